//! The two ends of one connection.

use std::io::{self, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::framing::{
    read_message, read_message_with_limit, write_message, ProtoError, MAX_RESPONSE,
};
use crate::message::{Request, Response};

/// Sends one request to the service manager at `socket` and returns its
/// answer. `timeout` bounds each read and write (a zero timeout means
/// the default of 10 s).
pub fn call(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ProtoError> {
    let stream = UnixStream::connect(socket).map_err(|source| ProtoError::Connect {
        path: socket.to_owned(),
        source,
    })?;
    let timeout = if timeout.is_zero() {
        Duration::from_secs(10)
    } else {
        timeout
    };
    let timed_out = |e: ProtoError| match e {
        ProtoError::Io(io) if is_timeout(&io) => ProtoError::Timeout(timeout),
        e => e,
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut writer = &stream;
    write_message(&mut writer, req).map_err(timed_out)?;
    // Tell a server that reads to the end that the request is complete.
    // (It may already have answered and closed: ignore errors.)
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reader = BufReader::new(&stream);
    read_message_with_limit(&mut reader, MAX_RESPONSE).map_err(timed_out)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The server's side of one connection: reads the request, answers with
/// `handler`'s response. A request that cannot be read (too long, not
/// JSON, unknown command) is answered with [`Response::err`] and the error
/// is returned too. The caller sets timeouts on the stream and closes it.
pub fn serve_connection<S, F>(stream: S, handler: F) -> Result<(), ProtoError>
where
    S: Read + Write,
    F: FnOnce(Request) -> Response,
{
    let mut reader = BufReader::new(stream);
    let request: Result<Request, ProtoError> = read_message(&mut reader);
    let mut stream = reader.into_inner();
    match request {
        Ok(req) => write_message(&mut stream, &handler(req)),
        Err(ProtoError::Eof) => Err(ProtoError::Eof),
        Err(e) => {
            // The answer is best effort: the client may be gone.
            let _ = write_message(&mut stream, &Response::err(format!("bad request: {e}")));
            Err(e)
        }
    }
}
