//! The bodies of the control protocol's fuzz targets, shared by
//! `../../fuzz/` (cargo-fuzz, its own workspace, includes this file with
//! `#[path]`) and `../fuzz_smoke.rs` (regression inputs, seeds and their
//! mutations in the ordinary test suite). PID 1 reads requests from any
//! local user of the socket; `slipctl` reads PID 1's answers. Each body
//! takes arbitrary bytes, must never panic, checks a property a wrong
//! decoder would break, and returns whether a message was accepted.
//! Dependencies: `slipway_control` and `serde`.

use std::io::{self, BufReader, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;
use slipway_control::{
    read_message_with_limit, serve_connection, write_message, ProtoError, Request, Response,
};

/// The messages on a stream, read until the first error: the outcome
/// of each read, as text.
fn read_all<T: DeserializeOwned + std::fmt::Debug>(
    stream: &[u8],
    capacity: usize,
    limit: usize,
) -> (Vec<T>, String) {
    let mut reader = BufReader::with_capacity(capacity, stream);
    let mut messages = Vec::new();
    loop {
        match read_message_with_limit::<T>(&mut reader, limit) {
            Ok(m) => messages.push(m),
            Err(e) => {
                // Kind only: serde's message names a column, which the
                // buffer size does not change, but keep it loose.
                let kind = match e {
                    ProtoError::Eof => "eof",
                    ProtoError::TooLong { .. } => "too long",
                    ProtoError::Json(_) => "json",
                    _ => "other",
                };
                return (messages, kind.to_string());
            }
        }
    }
}

/// A stream of messages of type `T`, the first byte choosing the line
/// limit and the reader's buffer size: reading with a one-byte buffer
/// gives what a large one gives; every message read is written as one
/// line that reads back the same.
fn messages<T>(data: &[u8], max: usize) -> bool
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let Some((&pick, stream)) = data.split_first() else {
        return false;
    };
    let limit = if pick & 1 == 0 {
        max
    } else {
        usize::from(pick)
    };
    let capacity = 1 + usize::from(pick >> 4);
    let (read, end) = read_all::<T>(stream, 8192, limit);
    let (read_small, end_small) = read_all::<T>(stream, capacity, limit);
    assert_eq!(
        (&read, &end),
        (&read_small, &end_small),
        "buffer {capacity}"
    );
    for m in &read {
        let mut line = Vec::new();
        write_message(&mut line, m).unwrap();
        assert_eq!(line.iter().position(|&b| b == b'\n'), Some(line.len() - 1));
        let (again, end) = read_all::<T>(&line, 8192, line.len());
        assert_eq!(again.as_slice(), std::slice::from_ref(m), "{end}");
    }
    !read.is_empty()
}

/// What PID 1 reads from a client.
pub fn request(data: &[u8]) -> bool {
    let accepted = messages::<Request>(data, slipway_control::MAX_MESSAGE);
    // The server's side: one answer line, whatever came.
    if let Some(stream) = data.get(1..) {
        let mut conn = Conn {
            input: stream,
            output: Vec::new(),
        };
        let served = serve_connection(&mut conn, |req| Response::ok(req.command()));
        if !matches!(served, Err(ProtoError::Eof)) {
            let (answers, _) = read_all::<Response>(&conn.output, 8192, usize::MAX);
            assert_eq!(answers.len(), 1, "{served:?}");
            assert_eq!(answers[0].ok, served.is_ok());
        }
    }
    accepted
}

/// What `slipctl` reads from PID 1.
pub fn response(data: &[u8]) -> bool {
    messages::<Response>(data, slipway_control::MAX_RESPONSE)
}

/// A connection: reads from `input`, writes to `output`.
struct Conn<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl Read for &mut Conn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for &mut Conn<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
