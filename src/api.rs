//! The public API in one table: every method a front-end answers and the
//! balancer forwards, with its signature and help. Both read it, so the two
//! can never disagree.

/// One public method.
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec {
    pub name: &'static str,
    /// `[return type, param types...]`.
    pub signature: &'static [&'static str],
    pub help: &'static str,
    /// Writes get a request id so that retries apply once.
    pub is_write: bool,
}

/// The health probe the balancer calls; public but not forwarded.
pub const HEALTH_METHOD: &str = "podium.health";

const fn m(
    name: &'static str,
    signature: &'static [&'static str],
    help: &'static str,
    is_write: bool,
) -> MethodSpec {
    MethodSpec {
        name,
        signature,
        help,
        is_write,
    }
}

/// Every public method of a front-end except the health probe, introspection
/// and `cluster.status`.
pub const PUBLIC_METHODS: &[MethodSpec] = &[
    m(
        "get_medal_tally",
        &["string", "string", "any"],
        "get_medal_tally(team, client_id): the team's medals as text.",
        false,
    ),
    m(
        "get_score",
        &["string", "string", "any"],
        "get_score(event, client_id): the event's latest score as text.",
        false,
    ),
    m(
        "increment_medal_tally",
        &["string", "string", "string", "string"],
        "increment_medal_tally(team, medal, password): adds one medal.",
        true,
    ),
    m(
        "set_score",
        &["string", "string", "string", "string"],
        "set_score(event, score, password): sets the event's score.",
        true,
    ),
    m(
        "register_client",
        &["string", "array", "array", "array"],
        "register_client([host, port], events, teams): push updates to the tablet's own XML-RPC server.",
        false,
    ),
    m(
        "scoreboard.roster",
        &["struct"],
        "Teams, events and medals.",
        false,
    ),
    m(
        "scoreboard.tally",
        &["struct", "string"],
        "One team's tally: {team, gold, silver, bronze, version, updated}.",
        false,
    ),
    m(
        "scoreboard.medal_table",
        &["array"],
        "Every team's tally, ranked gold > silver > bronze, each with its rank.",
        false,
    ),
    m(
        "scoreboard.score",
        &["struct", "string"],
        "One event's score: {event, score, version, updated}.",
        false,
    ),
    m(
        "scoreboard.increment_medal",
        &["struct", "string", "string", "string", "string"],
        "increment_medal(team, medal, password[, request_id]): {version, tally, duplicate}.",
        true,
    ),
    m(
        "scoreboard.set_score",
        &["struct", "string", "string", "string", "string"],
        "set_score(event, score, password[, request_id]): {version, score, duplicate}.",
        true,
    ),
    m(
        "scoreboard.subscribe",
        &["struct", "string", "array", "array", "int"],
        "subscribe(callback_url, events, teams[, lease_seconds]): push to the URL until the lease ends; call again to renew.",
        false,
    ),
    m(
        "scoreboard.unsubscribe",
        &["boolean", "string"],
        "unsubscribe(callback_url): ends a subscription; false if there was none.",
        false,
    ),
    m(
        "scoreboard.history",
        &["array", "string", "string"],
        "history(kind, name): the updates of a tally or score, oldest first, with version, timestamp and vector clock.",
        false,
    ),
];

/// The spec of a public method.
///
/// # Panics
/// For a name not in the table: a programming error, found at start-up.
pub fn spec(name: &str) -> &'static MethodSpec {
    PUBLIC_METHODS
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the public API table"))
}
