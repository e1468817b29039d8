//! Network sources: a URL from the kernel command line (plain or a NoCloud
//! seed) and the EC2-style metadata service. Plain HTTP through `ureq`,
//! every request time-limited and its body capped.

use std::time::{Duration, Instant};

use ureq::Agent;

use super::meta::parse_nocloud;
use super::{precedence, Datasource, DatasourceError, Fetched, Metadata, Poll, MAX_BODY};

/// Where EC2 (and OpenStack, and many others) serve instance metadata.
pub const EC2_DEFAULT_URL: &str = "http://169.254.169.254";

/// The longest wait for the IMDSv2 token: a metadata service that drops the
/// token answer (a PUT crossing one hop too many, in a container) should
/// not cost the whole per-request limit before falling back to IMDSv1.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(2);

/// How a request went wrong, by what to do about it.
#[derive(Debug)]
enum Failure {
    /// Nothing to talk to: connection refused, no route, name not
    /// resolved, or connecting timed out.
    NoConnection(String),
    /// Connected, but no (complete) answer in time, or the connection
    /// dropped: worth another try.
    Transient(String),
    /// A bad URL, a body over the cap, an HTTP protocol error: retrying
    /// will not help.
    Broken(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Failure::NoConnection(m) | Failure::Transient(m) | Failure::Broken(m) => m,
        }
    }
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An HTTP client with one time limit per request.
struct Client {
    agent: Agent,
}

impl Client {
    fn new(timeout: Duration) -> Client {
        let config = Agent::config_builder()
            // Statuses are answers we look at (404: no user-data), not errors.
            .http_status_as_error(false)
            // Never through a proxy from the environment: link-local
            // metadata and local seed servers are reached directly.
            .proxy(None)
            .timeout_global(Some(timeout))
            // Shorter than the whole, so a silent address is reported as a
            // connect timeout (no service) rather than a slow answer.
            .timeout_connect(Some(timeout / 2))
            .max_redirects(5)
            .build();
        Client {
            agent: Agent::new_with_config(config),
        }
    }

    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Reply, Failure> {
        if !url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        {
            return Err(Failure::Broken(
                "only plain http:// URLs are supported (the image has no TLS)".to_string(),
            ));
        }
        let result = if method == "PUT" {
            let mut req = self.agent.put(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.send_empty()
        } else {
            let mut req = self.agent.get(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.call()
        };
        let mut response = result.map_err(classify)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(classify)?;
        Ok(Reply { status, body })
    }
}

fn classify(e: ureq::Error) -> Failure {
    use std::io::ErrorKind;
    use ureq::{Error, Timeout};
    match e {
        Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NetworkDown
            | ErrorKind::AddrNotAvailable => Failure::NoConnection(format!("cannot connect: {io}")),
            _ => Failure::Transient(format!("connection failed: {io}")),
        },
        Error::Timeout(Timeout::Connect | Timeout::Resolve) => {
            Failure::NoConnection("connecting timed out".to_string())
        }
        Error::Timeout(t) => Failure::Transient(format!("no answer in time ({t})")),
        Error::HostNotFound => Failure::NoConnection("host name not found".to_string()),
        Error::ConnectionFailed => Failure::NoConnection("cannot connect".to_string()),
        Error::BodyExceedsLimit(_) => Failure::Broken(format!(
            "answer larger than {} MiB",
            MAX_BODY / (1024 * 1024)
        )),
        Error::BadUri(m) => Failure::Broken(format!("not a valid URL: {m}")),
        Error::Http(h) => Failure::Broken(format!("not a valid request: {h}")),
        Error::Tls(_) => Failure::Broken("https is not supported (the image has no TLS)".into()),
        other => Failure::Broken(other.to_string()),
    }
}

fn http_error(url: &str, message: impl Into<String>) -> DatasourceError {
    DatasourceError::Http {
        url: url.to_string(),
        message: message.into(),
    }
}

fn status_message(status: u16) -> String {
    let reason = match status {
        400 => " Bad Request",
        401 => " Unauthorized",
        403 => " Forbidden",
        404 => " Not Found",
        405 => " Method Not Allowed",
        500 => " Internal Server Error",
        502 => " Bad Gateway",
        503 => " Service Unavailable",
        504 => " Gateway Timeout",
        _ => "",
    };
    format!("HTTP status {status}{reason}")
}

/// The outcome of one failed attempt at a network source.
enum Attempt {
    /// Try again after the interval, unless the deadline has passed.
    Retry(DatasourceError),
    /// Give up now.
    Fail(DatasourceError),
}

/// Runs `attempt` until it succeeds, fails for good, or `policy.deadline`
/// passes (then the last error is returned).
fn with_retries(
    policy: &Poll,
    mut attempt: impl FnMut(&Client) -> Result<Option<Fetched>, Attempt>,
) -> Result<Option<Fetched>, DatasourceError> {
    let client = Client::new(policy.timeout);
    let start = Instant::now();
    loop {
        match attempt(&client) {
            Ok(found) => return Ok(found),
            Err(Attempt::Fail(e)) => return Err(e),
            Err(Attempt::Retry(e)) => {
                if start.elapsed() + policy.interval >= policy.deadline {
                    return Err(e);
                }
                std::thread::sleep(policy.interval);
            }
        }
    }
}

/// One GET of something the user asked for: 2xx is the body, 404 is
/// `None`, 5xx and connection problems are worth a retry, the rest fails.
fn get_optional(client: &Client, url: &str) -> Result<Option<Vec<u8>>, Attempt> {
    match client.send("GET", url, &[]) {
        Ok(r) if r.ok() => Ok(Some(r.body)),
        Ok(r) if r.status == 404 => Ok(None),
        Ok(r) if r.status >= 500 => Err(Attempt::Retry(http_error(url, status_message(r.status)))),
        Ok(r) => Err(Attempt::Fail(http_error(url, status_message(r.status)))),
        Err(Failure::Broken(m)) => Err(Attempt::Fail(http_error(url, m))),
        Err(f) => Err(Attempt::Retry(http_error(url, f.message()))),
    }
}

/// A NoCloud seed served over HTTP (`ds=nocloud;s=<base>`): GETs
/// `<base>user-data`, `<base>meta-data` and `<base>network-config`.
///
/// As in cloud-init the names are appended to the base as is, so the base
/// normally ends in `/`; a base that is only `http://host[:port]` gets the
/// `/` added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCloudNet {
    pub base_url: String,
}

impl NoCloudNet {
    pub fn new(base_url: String) -> Self {
        // Not a URL (no `://`): left as it is, the request names it. (Adding
        // a `/` there too made `new` of its own result add another.)
        let has_path = base_url
            .split_once("://")
            .is_none_or(|(_, rest)| rest.contains('/'));
        let base_url = if has_path {
            base_url
        } else {
            format!("{base_url}/")
        };
        NoCloudNet { base_url }
    }

    fn attempt(&self, client: &Client) -> Result<Option<Fetched>, Attempt> {
        let user_url = format!("{}user-data", self.base_url);
        let meta_url = format!("{}meta-data", self.base_url);
        let user_data = get_optional(client, &user_url)?;
        let meta_bytes = get_optional(client, &meta_url)?;
        if user_data.is_none() && meta_bytes.is_none() {
            return Err(Attempt::Fail(http_error(
                &self.base_url,
                "NoCloud seed URL serves neither user-data nor meta-data (HTTP 404 for both)",
            )));
        }
        let metadata = match &meta_bytes {
            Some(bytes) => {
                parse_nocloud(bytes).map_err(|m| Attempt::Fail(http_error(&meta_url, m)))?
            }
            None => Metadata::default(),
        };
        let network_config = get_optional(client, &format!("{}network-config", self.base_url))?;
        Ok(Some(Fetched {
            source: format!("NoCloud ({})", self.base_url),
            user_data,
            metadata,
            network_config,
        }))
    }
}

impl Datasource for NoCloudNet {
    fn name(&self) -> &'static str {
        "NoCloud (network)"
    }

    fn precedence(&self) -> u8 {
        precedence::CMDLINE
    }

    fn fetch(&self) -> Result<Option<Fetched>, DatasourceError> {
        self.fetch_with(&Poll::default())
    }

    /// The user named this URL: unreachable until the deadline is an error.
    fn fetch_with(&self, policy: &Poll) -> Result<Option<Fetched>, DatasourceError> {
        with_retries(policy, |client| self.attempt(client))
    }
}

/// A source named on the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineUrl {
    /// `cloud-config-url=<url>`: the user-data itself, one GET.
    ConfigUrl(String),
    /// `ds=nocloud;s=<url>` (cloud-init's spelling; also `nocloud-net` and
    /// `seedfrom=`): a NoCloud seed over HTTP.
    NoCloud(NoCloudNet),
}

impl CmdlineUrl {
    /// Finds the source in a kernel command line (`/proc/cmdline`).
    /// Parameters are separated by white space; quoting is not supported
    /// (URLs have no spaces). If a parameter repeats, the last one counts,
    /// as for kernel parameters. If both forms are given,
    /// `cloud-config-url=` wins: it is this system's own parameter and the
    /// more direct one. `ds=nocloud` without `s=` names no URL (cloud-init
    /// then looks for local seeds, which we always do) and gives `None`.
    pub fn from_cmdline(cmdline: &str) -> Option<CmdlineUrl> {
        let mut config_url = None;
        let mut seed = None;
        for arg in cmdline.split_whitespace() {
            if let Some(url) = arg.strip_prefix("cloud-config-url=") {
                if !url.is_empty() {
                    config_url = Some(url.to_string());
                }
            } else if let Some(ds) = arg.strip_prefix("ds=") {
                let mut parts = ds.split(';');
                let name = parts.next().unwrap_or_default();
                if !(name.eq_ignore_ascii_case("nocloud")
                    || name.eq_ignore_ascii_case("nocloud-net"))
                {
                    continue;
                }
                for part in parts {
                    let url = part
                        .strip_prefix("s=")
                        .or_else(|| part.strip_prefix("seedfrom="));
                    if let Some(url) = url.filter(|u| !u.is_empty()) {
                        seed = Some(url.to_string());
                    }
                }
            }
        }
        config_url
            .map(CmdlineUrl::ConfigUrl)
            .or_else(|| seed.map(|s| CmdlineUrl::NoCloud(NoCloudNet::new(s))))
    }

    /// The URL the parameter named.
    pub fn url(&self) -> &str {
        match self {
            CmdlineUrl::ConfigUrl(url) => url,
            CmdlineUrl::NoCloud(net) => &net.base_url,
        }
    }
}

impl Datasource for CmdlineUrl {
    fn name(&self) -> &'static str {
        match self {
            CmdlineUrl::ConfigUrl(_) => "cloud-config-url",
            CmdlineUrl::NoCloud(_) => "NoCloud (network)",
        }
    }

    fn precedence(&self) -> u8 {
        precedence::CMDLINE
    }

    fn fetch(&self) -> Result<Option<Fetched>, DatasourceError> {
        self.fetch_with(&Poll::default())
    }

    /// The user typed this URL: it is never "absent". A 404 is an error at
    /// once; no answer, or a 5xx, is retried until the deadline and then is
    /// an error.
    fn fetch_with(&self, policy: &Poll) -> Result<Option<Fetched>, DatasourceError> {
        match self {
            CmdlineUrl::NoCloud(net) => net.fetch_with(policy),
            CmdlineUrl::ConfigUrl(url) => {
                with_retries(policy, |client| match get_optional(client, url)? {
                    Some(body) => Ok(Some(Fetched {
                        source: format!("cloud-config-url ({url})"),
                        user_data: Some(body),
                        metadata: Metadata::default(),
                        network_config: None,
                    })),
                    None => Err(Attempt::Fail(http_error(url, status_message(404)))),
                })
            }
        }
    }
}

/// An EC2-style instance metadata service.
///
/// IMDSv2 first: `PUT <base>/latest/api/token` with
/// `X-aws-ec2-metadata-token-ttl-seconds: 300`, then the token in
/// `X-aws-ec2-metadata-token` on every GET. If the PUT is answered 403, 404
/// or 405, or not answered within 2 s, plain IMDSv1 GETs follow. Read:
/// `latest/user-data` (404: no user-data), and under `latest/meta-data/`:
/// `instance-id`, `local-hostname`, `public-ipv4`, `local-ipv4` (the
/// private address), and every `public-keys/<n>/openssh-key` listed by
/// `public-keys/`.
///
/// Absent (`Ok(None)`) when nothing accepts the connection (refused, no
/// route, connect timeout) or what answers has neither an instance ID nor
/// user-data. Present but failing (5xx, dropped answers) is retried until
/// the deadline, then an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2 {
    pub base_url: String,
}

impl Ec2 {
    /// `base_url` without the `/latest/…` part, e.g. [`EC2_DEFAULT_URL`].
    pub fn new(base_url: String) -> Self {
        Ec2 {
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    fn attempt(&self, client: &Client, token_client: &Client) -> Result<Option<Fetched>, Attempt> {
        let token_url = format!("{}/latest/api/token", self.base_url);
        let mut put_answered = true;
        let token = match token_client.send(
            "PUT",
            &token_url,
            &[("X-aws-ec2-metadata-token-ttl-seconds", "300")],
        ) {
            Ok(r) if r.ok() => {
                let token = String::from_utf8_lossy(&r.body).trim().to_string();
                if token.is_empty() {
                    return Err(Attempt::Fail(http_error(&token_url, "empty IMDSv2 token")));
                }
                Some(token)
            }
            Ok(r) if (403..=405).contains(&r.status) => None,
            Ok(r) if r.status >= 500 => {
                return Err(Attempt::Retry(http_error(
                    &token_url,
                    status_message(r.status),
                )))
            }
            Ok(r) => {
                return Err(Attempt::Fail(http_error(
                    &token_url,
                    status_message(r.status),
                )))
            }
            Err(Failure::NoConnection(_)) => return Ok(None),
            Err(Failure::Transient(_)) => {
                put_answered = false;
                None
            }
            Err(Failure::Broken(m)) => return Err(Attempt::Fail(http_error(&token_url, m))),
        };
        let headers: Vec<(&str, &str)> = match &token {
            Some(t) => vec![("X-aws-ec2-metadata-token", t.as_str())],
            None => Vec::new(),
        };
        let get = |path: &str| -> Result<Option<Vec<u8>>, Attempt> {
            let url = format!("{}/latest/{path}", self.base_url);
            match client.send("GET", &url, &headers) {
                Ok(r) if r.ok() => Ok(Some(r.body)),
                Ok(r) if r.status == 404 => Ok(None),
                Ok(r) if r.status == 401 => {
                    let why = if token.is_some() {
                        "the IMDSv2 token was refused"
                    } else {
                        "the service requires IMDSv2 tokens, but the token request failed"
                    };
                    Err(Attempt::Fail(http_error(
                        &url,
                        format!("{}: {why}", status_message(401)),
                    )))
                }
                Ok(r) if r.status >= 500 => {
                    Err(Attempt::Retry(http_error(&url, status_message(r.status))))
                }
                Ok(r) => Err(Attempt::Fail(http_error(&url, status_message(r.status)))),
                Err(Failure::Broken(m)) => Err(Attempt::Fail(http_error(&url, m))),
                Err(f) => Err(Attempt::Retry(http_error(&url, f.message()))),
            }
        };
        let text = |path: &str| -> Result<Option<String>, Attempt> {
            Ok(get(path)?.and_then(|b| ec2_value(&b)))
        };

        let instance_id = match text("meta-data/instance-id") {
            Ok(id) => id,
            // The token PUT went unanswered and so does this: nothing there.
            Err(Attempt::Retry(_)) if !put_answered => return Ok(None),
            Err(e) => return Err(e),
        };
        let user_data = get("user-data")?;
        if instance_id.is_none() && user_data.is_none() {
            return Ok(None);
        }
        let mut metadata = Metadata {
            instance_id,
            local_hostname: text("meta-data/local-hostname")?,
            public_ipv4: text("meta-data/public-ipv4")?,
            private_ipv4: text("meta-data/local-ipv4")?,
            ..Metadata::default()
        };
        // `public-keys/` lists `0=name` lines; each index has an
        // `openssh-key`.
        if let Some(listing) = text("meta-data/public-keys/")? {
            for index in ec2_key_indexes(&listing) {
                if let Some(key) = text(&format!("meta-data/public-keys/{index}/openssh-key"))? {
                    metadata.public_keys.push(key);
                }
            }
        }
        let version = if token.is_some() { "IMDSv2" } else { "IMDSv1" };
        Ok(Some(Fetched {
            source: format!("EC2 metadata ({}, {version})", self.base_url),
            user_data,
            metadata,
            network_config: None,
        }))
    }
}

/// One EC2 metadata value: the body as text, trimmed; `None` if empty.
#[doc(hidden)] // public for the fuzz targets
pub fn ec2_value(body: &[u8]) -> Option<String> {
    Some(String::from_utf8_lossy(body).trim().to_string()).filter(|s| !s.is_empty())
}

/// The indexes a `meta-data/public-keys/` listing names (`0=my-key` lines):
/// the part before `=`, trimmed, if it is all digits.
#[doc(hidden)] // public for the fuzz targets
pub fn ec2_key_indexes(listing: &str) -> Vec<&str> {
    listing
        .lines()
        .map(|line| line.split('=').next().unwrap_or_default().trim())
        .filter(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

impl Datasource for Ec2 {
    fn name(&self) -> &'static str {
        "EC2"
    }

    fn precedence(&self) -> u8 {
        precedence::EC2
    }

    fn fetch(&self) -> Result<Option<Fetched>, DatasourceError> {
        self.fetch_with(&Poll::default())
    }

    fn fetch_with(&self, policy: &Poll) -> Result<Option<Fetched>, DatasourceError> {
        let token_client = Client::new(policy.timeout.min(TOKEN_TIMEOUT));
        with_retries(policy, |client| self.attempt(client, &token_client))
    }
}
