//! Opening a payload for a delta download (its header and index read by
//! byte ranges), and the summary of how an apply's data came.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use super::index;
use super::reader::{Counters, Counting};
use crate::fetch::{self, FetchError, FetchOptions, Ranges, Source};
use crate::payload::{self, Header, HEADER_LEN};

/// A payload opened for a delta: its header (not verified yet) and the
/// index's bytes (not verified yet), read with byte ranges.
pub struct Opened {
    pub header: Header,
    pub index: Vec<u8>,
    pub ranges: Ranges,
}

/// Fetches the index next to `source` and the payload's header by byte
/// ranges. `Err` is the reason to download the whole payload instead.
pub fn open(
    source: &Source,
    payload_len: u64,
    opts: &FetchOptions,
    counters: &Counters,
) -> Result<Opened, String> {
    let index_src = match source {
        Source::Url(u) => Source::Url(index::url_for(u)),
        Source::File(p) => Source::File(index::url_for(&p.display().to_string()).into()),
    };
    let index = fetch::get_small(&index_src, index::MAX_INDEX, opts)
        .map_err(|e| format!("no delta index ({e})"))?;
    Counters::add(&counters.downloaded, index.len() as u64);
    Counters::add(&counters.requests, 1);
    let ranges = Ranges::new(source, payload_len, opts);
    let header = read_header(&ranges, counters).map_err(|e| match e {
        HeaderError::Fetch(e @ FetchError::RangeIgnored { .. }) => {
            format!("the server does not serve byte ranges ({e})")
        }
        e => format!("reading the payload's header by byte ranges: {e}"),
    })?;
    Ok(Opened {
        header,
        index,
        ranges,
    })
}

#[derive(Debug, thiserror::Error)]
enum HeaderError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Payload(#[from] payload::PayloadError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The fixed header, then exactly the manifest and signatures it announces.
fn read_header(ranges: &Ranges, counters: &Counters) -> Result<Header, HeaderError> {
    let mut head = [0u8; HEADER_LEN];
    Counting {
        inner: ranges.open(0, HEADER_LEN as u64)?,
        counter: &counters.downloaded,
    }
    .read_exact(&mut head)?;
    let rest_len = payload::header_rest_len(&head)?;
    let rest = Counting {
        inner: ranges.open(HEADER_LEN as u64, HEADER_LEN as u64 + rest_len)?,
        counter: &counters.downloaded,
    };
    Counters::add(&counters.requests, 2);
    Ok(payload::read_header(
        &mut io::Cursor::new(head).chain(rest),
    )?)
}

/// How the data of an apply arrived, for the status and `status --json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Download {
    /// `delta` or `full`.
    pub mode: String,
    /// Why a delta was not used (no index, no ranges…), when it was not.
    pub fallback: Option<String>,
    /// Bytes received over the network, headers and index included.
    pub downloaded: u64,
    /// The whole payload's size.
    pub payload: u64,
    pub requests: u64,
    pub reused_pieces: u64,
    pub reused_bytes: u64,
    pub fetched_pieces: u64,
    pub local_mismatches: u64,
    pub whole_chunks: u64,
    /// Where reused pieces came from ("slot a").
    pub reused_from: Option<String>,
    pub scanned_bytes: u64,
    pub scan_ms: u64,
}

impl Download {
    pub fn from_counters(c: &Counters) -> Download {
        let g = Counters::get;
        Download {
            downloaded: g(&c.downloaded),
            requests: g(&c.requests),
            reused_pieces: g(&c.reused_pieces),
            reused_bytes: g(&c.reused_bytes),
            fetched_pieces: g(&c.fetched_pieces),
            local_mismatches: g(&c.local_mismatches),
            whole_chunks: g(&c.whole_chunks),
            ..Download::default()
        }
    }

    /// One line for people: "downloaded 3.1 MiB of the 180.0 MiB payload
    /// (1.7 %) in 41 requests; 2712 pieces (176.9 MiB) reused from slot a".
    pub fn summary(&self) -> String {
        let mib = crate::human::mib;
        let pct = if self.payload > 0 {
            self.downloaded as f64 * 100.0 / self.payload as f64
        } else {
            0.0
        };
        let mut s = format!(
            "downloaded {} of the {} payload ({pct:.1} %)",
            mib(self.downloaded),
            mib(self.payload)
        );
        if self.mode == "delta" {
            s += &format!(
                " in {} requests: delta, {} pieces ({}) reused from {}, {} fetched",
                self.requests,
                self.reused_pieces,
                mib(self.reused_bytes),
                self.reused_from.as_deref().unwrap_or("this machine"),
                self.fetched_pieces
            );
            if self.local_mismatches > 0 || self.whole_chunks > 0 {
                s += &format!(
                    " ({} local pieces did not match and were fetched, {} chunks fetched whole)",
                    self.local_mismatches, self.whole_chunks
                );
            }
        } else if let Some(why) = &self.fallback {
            s += &format!(": whole payload, {why}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A server that answers every GET with the whole file and 200, as a
    /// server without byte ranges does; `/x.payload.index` is the index.
    fn serve_without_ranges(payload: Vec<u8>, index: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x.payload", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let body = if first.contains(".index") {
                    &index
                } else {
                    &payload
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            }
        });
        url
    }

    #[test]
    fn a_server_without_byte_ranges_means_the_whole_payload_and_says_so() {
        let key = crate::keys::SecretKey::from_seed(&[42; 32]);
        let (_, payload) = crate::payload::tests::build("1.0", &key);
        let url = serve_without_ranges(payload.clone(), b"{}".to_vec());
        let counters = Counters::default();
        let why = open(
            &Source::Url(url.clone()),
            payload.len() as u64,
            &FetchOptions::default(),
            &counters,
        )
        .err()
        .expect("no delta without ranges");
        assert!(why.contains("does not serve byte ranges"), "{why}");
        assert!(why.contains(&url), "{why}");

        // No index at all: the reason names the index's URL.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/y.payload", listener.local_addr().unwrap());
        drop(listener);
        let why = open(&Source::Url(dead), 10, &FetchOptions::default(), &counters)
            .err()
            .unwrap();
        assert!(
            why.starts_with("no delta index") && why.contains("y.payload.index"),
            "{why}"
        );
    }
}
