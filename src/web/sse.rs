//! Server-sent events on the wire: writing them, and reading a stream of
//! them back incrementally (the balancer follows a front-end's stream, the
//! benchmark follows thousands).
//!
//! ```text
//! retry: 1000          reconnect after 1 s (written once, first)
//!
//! event: change        a named event with its id and one line of data
//! id: 43
//! data: {...}
//!
//! : keep-alive         a comment, which readers ignore
//! ```
//!
//! The reader follows the HTML standard's rules: lines end in LF, CRLF or
//! CR; `data` lines join with LF; an event is dispatched at a blank line
//! when it has data; unknown fields and comments are ignored. It keeps at
//! most [`MAX_EVENT_BYTES`] of one event.

use bytes::{BufMut as _, Bytes, BytesMut};

/// Largest event the reader accepts (a snapshot of a large roster fits
/// many times over).
pub const MAX_EVENT_BYTES: usize = 8 << 20;

/// One event, `event:` name `name` (none: "message").
pub fn event(name: &str, id: Option<i64>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(name.len() + data.len() + 40);
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_u8(b'\n');
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(itoa::Buffer::new().format(id).as_bytes());
        out.put_u8(b'\n');
    }
    for line in data.split('\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// The reconnection delay a browser is to use, milliseconds.
pub fn retry(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

/// A comment line (a keep-alive).
pub fn comment(text: &str) -> Bytes {
    Bytes::from(format!(": {text}\n\n"))
}

/// An event as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; "message" when there was none.
    pub name: String,
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    pub data: String,
}

/// Why a stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("an event over {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    #[error("an event that is not UTF-8")]
    NotUtf8,
}

/// Reads events out of a byte stream, chunk by chunk.
#[derive(Debug, Default)]
pub struct Reader {
    /// Bytes of an unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: an LF first in the next one ends
    /// nothing more.
    after_cr: bool,
    name: String,
    id: Option<String>,
    data: String,
    has_data: bool,
    /// Bytes held for the event being read.
    held: usize,
    /// The last `retry:` value seen, milliseconds.
    pub retry_ms: Option<u64>,
}

impl Reader {
    pub fn new() -> Reader {
        Reader::default()
    }

    /// Feeds `chunk`, and hands every event it completes to `on_event`.
    ///
    /// # Errors
    /// An event over [`MAX_EVENT_BYTES`], or one that is not UTF-8.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(Event)) -> Result<(), ReadError> {
        let mut rest = chunk;
        if self.after_cr && rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        self.after_cr = false;
        while let Some(end) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let (head, tail) = rest.split_at(end);
            let line = if self.line.is_empty() {
                std::borrow::Cow::Borrowed(head)
            } else {
                self.line.extend_from_slice(head);
                std::borrow::Cow::Owned(std::mem::take(&mut self.line))
            };
            if let Some(event) = self.line_done(&line)? {
                on_event(event);
            }
            let crlf = tail[0] == b'\r' && tail.get(1) == Some(&b'\n');
            if tail[0] == b'\r' && tail.len() == 1 {
                self.after_cr = true;
            }
            rest = &tail[if crlf { 2 } else { 1 }..];
        }
        self.line.extend_from_slice(rest);
        if self.held + self.line.len() > MAX_EVENT_BYTES {
            return Err(ReadError::TooLarge);
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8]) -> Result<Option<Event>, ReadError> {
        if line.is_empty() {
            self.held = 0;
            let name = std::mem::take(&mut self.name);
            let data = std::mem::take(&mut self.data);
            let id = self.id.take();
            if !std::mem::take(&mut self.has_data) {
                return Ok(None);
            }
            return Ok(Some(Event {
                name: if name.is_empty() {
                    "message".into()
                } else {
                    name
                },
                id,
                data,
            }));
        }
        self.held += line.len();
        if self.held > MAX_EVENT_BYTES {
            return Err(ReadError::TooLarge);
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let line = std::str::from_utf8(line).map_err(|_| ReadError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" => self.retry_ms = value.parse().ok().or(self.retry_ms),
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut reader = Reader::new();
        let mut out = Vec::new();
        for c in chunks {
            reader.feed(c, |e| out.push(e)).unwrap();
        }
        out
    }

    #[test]
    fn what_is_written_reads_back_split_anywhere() {
        let mut wire = retry(1000).to_vec();
        wire.extend_from_slice(&event("change", Some(43), "{\"a\":1}"));
        wire.extend_from_slice(&comment("keep-alive"));
        wire.extend_from_slice(&event("status", None, "two\nlines"));
        let want = vec![
            Event {
                name: "change".into(),
                id: Some("43".into()),
                data: "{\"a\":1}".into(),
            },
            Event {
                name: "status".into(),
                id: None,
                data: "two\nlines".into(),
            },
        ];
        assert_eq!(read_all(&[&wire]), want);
        for cut in 0..wire.len() {
            let (a, b) = wire.split_at(cut);
            assert_eq!(read_all(&[a, b]), want, "cut at {cut}");
        }
    }

    #[test]
    fn crlf_and_cr_end_lines_too() {
        let got = read_all(&[b"data: a\r", b"\nid: 1\r\r", b"data: b\r\n\r\n"]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data, "a");
        assert_eq!(got[0].id.as_deref(), Some("1"));
        assert_eq!(got[1].data, "b");
        assert_eq!(got[1].name, "message");
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut reader = Reader::new();
        let line = vec![b'x'; 1 << 20];
        let mut result = Ok(());
        for _ in 0..10 {
            result = result.and_then(|_| reader.feed(&line, |_| {}));
        }
        assert_eq!(result, Err(ReadError::TooLarge));
    }
}
