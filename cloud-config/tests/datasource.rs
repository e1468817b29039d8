//! Datasources against fixture trees and a tiny local HTTP server.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloud_config::datasource::{
    self, fetch_first, filesystem_label, is_configdrive_label, is_nocloud_label, CmdlineUrl,
    ConfigDrive, Datasource, DatasourceError, Ec2, Fetched, FsKind, FwCfg, NoCloud, NoCloudNet,
    Poll, LABEL_PROBE_BYTES,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/datasource-fixtures")
        .join(name)
}

/// Short limits so failing paths finish fast.
fn quick() -> Poll {
    Poll {
        timeout: Duration::from_secs(2),
        interval: Duration::from_millis(50),
        deadline: Duration::from_millis(400),
    }
}

// ---------------------------------------------------------------- server

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `None`: never answer (the connection is held open for a while).
type Reply = Option<(u16, Vec<u8>)>;

struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handler = handler.clone();
            let log = log.clone();
            std::thread::spawn(move || handle(stream, &*handler, &log));
        }
    });
    Server { addr, requests }
}

fn handle(stream: TcpStream, handler: &dyn Fn(&Request) -> Reply, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Request {
        method,
        path,
        headers,
    };
    if let Some(len) = req.header("content-length") {
        let mut body = vec![0; len.parse().unwrap_or(0)];
        reader.read_exact(&mut body).unwrap();
    }
    log.lock().unwrap().push(req.clone());
    let Some((status, body)) = handler(&req) else {
        std::thread::sleep(Duration::from_secs(10));
        return;
    };
    let mut out = stream;
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&body);
}

fn ok(body: &str) -> Reply {
    Some((200, body.as_bytes().to_vec()))
}

fn status(code: u16) -> Reply {
    Some((code, Vec::new()))
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

// ---------------------------------------------------------------- NoCloud

#[test]
fn datasource_nocloud_with_list_public_keys() {
    let root = fixture("nocloud-list");
    let got = NoCloud::from_dir(root.clone()).fetch().unwrap().unwrap();
    assert_eq!(got.source, format!("NoCloud ({})", root.display()));
    assert_eq!(
        got.user_data.as_deref(),
        Some(&b"#cloud-config\nhostname: from-list\n"[..])
    );
    let m = &got.metadata;
    assert_eq!(m.instance_id.as_deref(), Some("iid-local01"));
    assert_eq!(m.local_hostname.as_deref(), Some("cloudimg"));
    assert_eq!(m.public_keys.len(), 2);
    assert!(m.public_keys[0].starts_with("ssh-ed25519 "));
    assert!(m.public_keys[1].ends_with("two@example"));
    assert!(got
        .network_config
        .as_deref()
        .is_some_and(|n| n.starts_with(b"version: 2")));
}

#[test]
fn datasource_nocloud_with_map_public_keys() {
    let got = NoCloud::from_dir(fixture("nocloud-map"))
        .fetch()
        .unwrap()
        .unwrap();
    let m = &got.metadata;
    // An integer instance-id is taken as its text.
    assert_eq!(m.instance_id.as_deref(), Some("4242"));
    assert_eq!(m.local_hostname.as_deref(), Some("mapped"));
    assert_eq!(
        m.public_keys,
        vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILaptop laptop@example",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIServerA a@example",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIServerB b@example",
        ]
    );
    assert_eq!(got.network_config, None);
}

#[test]
fn datasource_nocloud_broken_meta_data_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user-data"), "#cloud-config\n").unwrap();
    std::fs::write(
        dir.path().join("meta-data"),
        "instance-id: a\n  local-hostname: [oops\n",
    )
    .unwrap();
    let err = NoCloud::from_dir(dir.path().to_path_buf())
        .fetch()
        .unwrap_err();
    let DatasourceError::File { path, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, &dir.path().join("meta-data"));
    assert!(message.contains("not valid YAML: line"), "{message}");
    assert!(
        err.to_string().contains("meta-data: not valid YAML"),
        "{err}"
    );
}

#[test]
fn datasource_nocloud_meta_data_of_wrong_shape_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("meta-data"), "- a\n- b\n").unwrap();
    let err = NoCloud::from_dir(dir.path().to_path_buf())
        .fetch()
        .unwrap_err();
    assert!(err.to_string().contains("want a mapping"), "{err}");

    std::fs::write(dir.path().join("meta-data"), "public-keys:\n  - [a, b]\n").unwrap();
    let err = NoCloud::from_dir(dir.path().to_path_buf())
        .fetch()
        .unwrap_err();
    assert!(err.to_string().contains("public-keys"), "{err}");
}

#[test]
fn datasource_nocloud_user_data_only_and_empty_meta_data() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user-data"), "#cloud-config\n").unwrap();
    let got = NoCloud::from_dir(dir.path().to_path_buf())
        .fetch()
        .unwrap()
        .unwrap();
    assert_eq!(got.metadata, datasource::Metadata::default());
    std::fs::write(dir.path().join("meta-data"), "").unwrap();
    let got = NoCloud::from_dir(dir.path().to_path_buf())
        .fetch()
        .unwrap()
        .unwrap();
    assert_eq!(got.metadata.instance_id, None);
}

#[test]
fn datasource_nocloud_absent_and_empty_seed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-mounted");
    assert_eq!(NoCloud::from_dir(missing).fetch(), Ok(None));
    // A seed filesystem with the files misnamed is reported.
    std::fs::write(dir.path().join("user_data"), "#cloud-config\n").unwrap();
    let err = NoCloud::from_dir(dir.path().to_path_buf())
        .fetch()
        .unwrap_err();
    assert!(
        err.to_string().contains("without user-data or meta-data"),
        "{err}"
    );
}

// ---------------------------------------------------------------- ConfigDrive

#[test]
fn datasource_configdrive_json() {
    let got = ConfigDrive::from_dir(fixture("configdrive"))
        .fetch()
        .unwrap()
        .unwrap();
    assert!(got.source.starts_with("ConfigDrive ("));
    assert_eq!(
        got.user_data.as_deref(),
        Some(&b"#cloud-config\nhostname: from-config-drive\n"[..])
    );
    let m = &got.metadata;
    assert_eq!(
        m.instance_id.as_deref(),
        Some("83679162-1378-4288-a2d4-70e13ec132aa")
    );
    assert_eq!(m.local_hostname.as_deref(), Some("test.novalocal"));
    assert_eq!(
        m.public_keys,
        vec!["ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQConfigDrive nova@example"]
    );
}

#[test]
fn datasource_configdrive_broken_or_missing_json() {
    let dir = tempfile::tempdir().unwrap();
    let latest = dir.path().join("openstack/latest");
    std::fs::create_dir_all(&latest).unwrap();
    let err = ConfigDrive::from_dir(dir.path().to_path_buf())
        .fetch()
        .unwrap_err();
    assert!(err.to_string().contains("meta_data.json: missing"), "{err}");

    std::fs::write(latest.join("meta_data.json"), "{\"uuid\": ").unwrap();
    let err = ConfigDrive::from_dir(dir.path().to_path_buf())
        .fetch()
        .unwrap_err();
    assert!(
        err.to_string().contains("meta_data.json: not valid JSON"),
        "{err}"
    );

    std::fs::write(latest.join("meta_data.json"), "{\"uuid\": \"u1\"}").unwrap();
    let got = ConfigDrive::from_dir(dir.path().to_path_buf())
        .fetch()
        .unwrap()
        .unwrap();
    assert_eq!(got.user_data, None);
    assert_eq!(got.metadata.instance_id.as_deref(), Some("u1"));

    assert_eq!(
        ConfigDrive::from_dir(dir.path().join("nope")).fetch(),
        Ok(None)
    );
}

// ---------------------------------------------------------------- fw_cfg

fn fw_cfg_tree(user_data: Option<&str>, meta_data: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let by_name = dir.path().join("sys/firmware/qemu_fw_cfg/by_name");
    std::fs::create_dir_all(by_name.join("etc/boot-menu-wait")).unwrap();
    for (name, content) in [("user-data", user_data), ("meta-data", meta_data)] {
        if let Some(content) = content {
            let entry = by_name.join("opt/org.slipway").join(name);
            std::fs::create_dir_all(&entry).unwrap();
            std::fs::write(entry.join("raw"), content).unwrap();
        }
    }
    dir
}

#[test]
fn datasource_fw_cfg_present_and_absent() {
    let tree = fw_cfg_tree(Some("#cloud-config\nhostname: fw\n"), None);
    let got = FwCfg::new(tree.path().to_path_buf())
        .fetch()
        .unwrap()
        .unwrap();
    assert_eq!(got.source, "fw_cfg (opt/org.slipway/user-data)");
    assert_eq!(
        got.user_data.as_deref(),
        Some(&b"#cloud-config\nhostname: fw\n"[..])
    );
    assert_eq!(got.metadata.instance_id, None);

    let tree = fw_cfg_tree(Some("#cloud-config\n"), Some("instance-id: fw-1\n"));
    let got = FwCfg::new(tree.path().to_path_buf())
        .fetch()
        .unwrap()
        .unwrap();
    assert_eq!(got.metadata.instance_id.as_deref(), Some("fw-1"));

    // The module loaded but no entry of ours; or no module at all.
    let tree = fw_cfg_tree(None, None);
    assert_eq!(FwCfg::new(tree.path().to_path_buf()).fetch(), Ok(None));
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(FwCfg::new(empty.path().to_path_buf()).fetch(), Ok(None));
}

// ---------------------------------------------------------------- cmdline

#[test]
fn datasource_cmdline_parsing() {
    let cmdline = "BOOT_IMAGE=/vmlinuz root=PARTUUID=abc ro console=ttyS0,115200 \
                   cloud-config-url=http://10.0.2.2:8000/user-data quiet\n";
    assert_eq!(
        CmdlineUrl::from_cmdline(cmdline),
        Some(CmdlineUrl::ConfigUrl(
            "http://10.0.2.2:8000/user-data".to_string()
        ))
    );
    let ds = "console=ttyS0 ds=nocloud;s=http://10.0.2.2:8000/seed/ quiet";
    let got = CmdlineUrl::from_cmdline(ds).unwrap();
    assert_eq!(
        got,
        CmdlineUrl::NoCloud(NoCloudNet::new("http://10.0.2.2:8000/seed/".to_string()))
    );
    assert_eq!(got.url(), "http://10.0.2.2:8000/seed/");
    assert_eq!(
        CmdlineUrl::from_cmdline("ds=nocloud-net;seedfrom=http://h/x/")
            .map(|c| c.url().to_string()),
        Some("http://h/x/".to_string())
    );
    // Both: cloud-config-url wins. Repeated: the last one counts.
    assert_eq!(
        CmdlineUrl::from_cmdline("cloud-config-url=http://a/1 ds=nocloud;s=http://b/")
            .map(|c| c.url().to_string()),
        Some("http://a/1".to_string())
    );
    assert_eq!(
        CmdlineUrl::from_cmdline("cloud-config-url=http://a/1 cloud-config-url=http://a/2")
            .map(|c| c.url().to_string()),
        Some("http://a/2".to_string())
    );
    // Nothing usable.
    assert_eq!(CmdlineUrl::from_cmdline("root=/dev/sda1 ro"), None);
    assert_eq!(CmdlineUrl::from_cmdline("ds=nocloud"), None);
    assert_eq!(CmdlineUrl::from_cmdline("ds=ec2;s=http://x/"), None);
    assert_eq!(CmdlineUrl::from_cmdline("cloud-config-url="), None);
    assert_eq!(
        CmdlineUrl::from_cmdline("xcloud-config-url=http://x/"),
        None
    );
    // A bare host gets its slash.
    assert_eq!(
        NoCloudNet::new("http://10.0.2.2:8000".to_string()).base_url,
        "http://10.0.2.2:8000/"
    );
}

#[test]
fn datasource_cmdline_url_fetches_user_data() {
    let server = serve(|req| match req.path.as_str() {
        "/config/user-data" => ok("#cloud-config\nhostname: net\n"),
        _ => status(404),
    });
    let url = format!("{}/config/user-data", server.url());
    let source = CmdlineUrl::from_cmdline(&format!("ro cloud-config-url={url} quiet")).unwrap();
    let got = source.fetch_with(&quick()).unwrap().unwrap();
    assert_eq!(got.source, format!("cloud-config-url ({url})"));
    assert_eq!(
        got.user_data.as_deref(),
        Some(&b"#cloud-config\nhostname: net\n"[..])
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(server.requests()[0].method, "GET");
}

#[test]
fn datasource_cmdline_url_404_and_unreachable_are_errors() {
    let server = serve(|_| status(404));
    let url = format!("{}/missing", server.url());
    let err = CmdlineUrl::ConfigUrl(url.clone())
        .fetch_with(&quick())
        .unwrap_err();
    assert_eq!(
        err,
        DatasourceError::Http {
            url: url.clone(),
            message: "HTTP status 404 Not Found".to_string()
        }
    );
    // No retries on a 404.
    assert_eq!(server.requests().len(), 1);

    let closed = format!("{}/user-data", closed_port_url());
    let start = Instant::now();
    let err = CmdlineUrl::ConfigUrl(closed.clone())
        .fetch_with(&quick())
        .unwrap_err();
    assert!(err.to_string().starts_with(&closed), "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));

    let err = CmdlineUrl::ConfigUrl("https://example.com/u".to_string())
        .fetch_with(&quick())
        .unwrap_err();
    assert!(err.to_string().contains("only plain http://"), "{err}");
}

#[test]
fn datasource_cmdline_url_retries_a_server_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let server = serve(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            status(503)
        } else {
            ok("#cloud-config\n")
        }
    });
    let poll = Poll {
        deadline: Duration::from_secs(5),
        ..quick()
    };
    let got = CmdlineUrl::ConfigUrl(format!("{}/u", server.url()))
        .fetch_with(&poll)
        .unwrap()
        .unwrap();
    assert_eq!(got.user_data.as_deref(), Some(&b"#cloud-config\n"[..]));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn datasource_nocloud_net_seed() {
    let server = serve(|req| match req.path.as_str() {
        "/seed/user-data" => ok("#cloud-config\n"),
        "/seed/meta-data" => ok("instance-id: net-1\nlocal-hostname: n1\n"),
        _ => status(404),
    });
    let source = CmdlineUrl::from_cmdline(&format!("ds=nocloud;s={}/seed/", server.url())).unwrap();
    let got = source.fetch_with(&quick()).unwrap().unwrap();
    assert_eq!(got.source, format!("NoCloud ({}/seed/)", server.url()));
    assert_eq!(got.user_data.as_deref(), Some(&b"#cloud-config\n"[..]));
    assert_eq!(got.metadata.instance_id.as_deref(), Some("net-1"));
    assert_eq!(got.metadata.local_hostname.as_deref(), Some("n1"));
    assert_eq!(got.network_config, None);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/seed/user-data", "/seed/meta-data", "/seed/network-config"]
    );

    let broken = serve(|req| match req.path.as_str() {
        "/meta-data" => ok("instance-id: [\n"),
        _ => ok(""),
    });
    let err = NoCloudNet::new(broken.url())
        .fetch_with(&quick())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}/meta-data: not valid YAML", broken.url())),
        "{err}"
    );
}

// ---------------------------------------------------------------- EC2

const TOKEN: &str = "AQAEAExampleToken==";

/// An IMDS answering `path` (under /latest/) with the canned tree.
fn imds_tree(path: &str, with_user_data: bool) -> Reply {
    match path {
        "/latest/meta-data/instance-id" => ok("i-0123456789abcdef0"),
        "/latest/meta-data/local-hostname" => ok("ip-10-0-0-5.ec2.internal"),
        "/latest/meta-data/public-ipv4" => ok("203.0.113.7"),
        "/latest/meta-data/local-ipv4" => ok("10.0.0.5"),
        "/latest/meta-data/public-keys/" => ok("0=laptop\n1=backup"),
        "/latest/meta-data/public-keys/0/openssh-key" => ok("ssh-ed25519 AAAA laptop\n"),
        "/latest/meta-data/public-keys/1/openssh-key" => ok("ssh-ed25519 BBBB backup\n"),
        "/latest/user-data" if with_user_data => ok("#cloud-config\nhostname: ec2\n"),
        _ => status(404),
    }
}

fn imds_v2(with_user_data: bool) -> Server {
    serve(move |req| {
        if req.method == "PUT" {
            return if req.path == "/latest/api/token"
                && req.header("X-aws-ec2-metadata-token-ttl-seconds") == Some("300")
            {
                ok(TOKEN)
            } else {
                status(400)
            };
        }
        if req.header("X-aws-ec2-metadata-token") != Some(TOKEN) {
            return status(401);
        }
        imds_tree(&req.path, with_user_data)
    })
}

#[test]
fn datasource_ec2_imdsv2() {
    let server = imds_v2(true);
    let got = Ec2::new(format!("{}/", server.url()))
        .fetch_with(&quick())
        .unwrap()
        .unwrap();
    assert_eq!(
        got.source,
        format!("EC2 metadata ({}, IMDSv2)", server.url())
    );
    assert_eq!(
        got.user_data.as_deref(),
        Some(&b"#cloud-config\nhostname: ec2\n"[..])
    );
    let m = &got.metadata;
    assert_eq!(m.instance_id.as_deref(), Some("i-0123456789abcdef0"));
    assert_eq!(
        m.local_hostname.as_deref(),
        Some("ip-10-0-0-5.ec2.internal")
    );
    assert_eq!(m.public_ipv4.as_deref(), Some("203.0.113.7"));
    assert_eq!(m.private_ipv4.as_deref(), Some("10.0.0.5"));
    assert_eq!(
        m.public_keys,
        vec!["ssh-ed25519 AAAA laptop", "ssh-ed25519 BBBB backup"]
    );
    let requests = server.requests();
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(requests[0].path, "/latest/api/token");
    assert!(requests[1..]
        .iter()
        .all(|r| r.method == "GET" && r.header("X-aws-ec2-metadata-token") == Some(TOKEN)));
    assert!(requests
        .iter()
        .any(|r| r.path == "/latest/meta-data/public-keys/1/openssh-key"));
}

#[test]
fn datasource_ec2_404_user_data_is_metadata_only() {
    let server = imds_v2(false);
    let got = Ec2::new(server.url())
        .fetch_with(&quick())
        .unwrap()
        .unwrap();
    assert_eq!(got.user_data, None);
    assert_eq!(
        got.metadata.instance_id.as_deref(),
        Some("i-0123456789abcdef0")
    );
}

#[test]
fn datasource_ec2_falls_back_to_imdsv1_on_403() {
    let server = serve(|req| {
        if req.method == "PUT" {
            status(403)
        } else {
            imds_tree(&req.path, true)
        }
    });
    let got = Ec2::new(server.url())
        .fetch_with(&quick())
        .unwrap()
        .unwrap();
    assert_eq!(
        got.source,
        format!("EC2 metadata ({}, IMDSv1)", server.url())
    );
    assert_eq!(
        got.metadata.instance_id.as_deref(),
        Some("i-0123456789abcdef0")
    );
    assert!(got.user_data.is_some());
    let requests = server.requests();
    assert_eq!(requests[0].method, "PUT");
    assert!(requests[1..]
        .iter()
        .all(|r| r.method == "GET" && r.header("X-aws-ec2-metadata-token").is_none()));
}

#[test]
fn datasource_ec2_falls_back_to_imdsv1_when_the_token_never_comes() {
    let server = serve(|req| {
        if req.method == "PUT" {
            None
        } else {
            imds_tree(&req.path, true)
        }
    });
    let poll = Poll {
        timeout: Duration::from_millis(600),
        ..quick()
    };
    let got = Ec2::new(server.url()).fetch_with(&poll).unwrap().unwrap();
    assert!(got.source.ends_with("IMDSv1)"), "{}", got.source);
    assert_eq!(got.metadata.private_ipv4.as_deref(), Some("10.0.0.5"));
}

#[test]
fn datasource_ec2_v1_but_service_wants_tokens_is_an_error() {
    let server = serve(|req| {
        if req.method == "PUT" {
            status(405)
        } else {
            status(401)
        }
    });
    let err = Ec2::new(server.url()).fetch_with(&quick()).unwrap_err();
    assert!(err.to_string().contains("requires IMDSv2 tokens"), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}/latest/meta-data/instance-id", server.url())),
        "{err}"
    );
}

#[test]
fn datasource_ec2_connection_refused_is_absent() {
    let start = Instant::now();
    let got = Ec2::new(closed_port_url()).fetch_with(&Poll::default());
    assert_eq!(got, Ok(None));
    // No retries: machines outside a cloud do not wait for it.
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn datasource_ec2_http_server_without_metadata_is_absent() {
    let server = serve(|_| status(404));
    assert_eq!(Ec2::new(server.url()).fetch_with(&quick()), Ok(None));
}

// ---------------------------------------------------------------- labels

fn fat32_boot_sector(label: &[u8; 11]) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    s[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
    s[3..11].copy_from_slice(b"mkfs.fat");
    s[11..13].copy_from_slice(&512u16.to_le_bytes()); // bytes per sector
    s[13] = 1; // sectors per cluster
    s[14..16].copy_from_slice(&32u16.to_le_bytes()); // reserved sectors
    s[16] = 2; // FATs
    s[21] = 0xF8; // media
                  // 16-bit sectors per FAT (22..24) stays 0: FAT32.
    s[32..36].copy_from_slice(&81920u32.to_le_bytes()); // total sectors
    s[36..40].copy_from_slice(&630u32.to_le_bytes()); // sectors per FAT
    s[44..48].copy_from_slice(&2u32.to_le_bytes()); // root cluster
    s[0x42] = 0x29; // extended boot signature
    s[0x43..0x47].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    s[0x47..0x52].copy_from_slice(label);
    s[0x52..0x5A].copy_from_slice(b"FAT32   ");
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

fn fat16_boot_sector(label: &[u8; 11]) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    s[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    s[3..11].copy_from_slice(b"mkfs.fat");
    s[11..13].copy_from_slice(&512u16.to_le_bytes());
    s[13] = 4;
    s[14..16].copy_from_slice(&4u16.to_le_bytes());
    s[16] = 2;
    s[17..19].copy_from_slice(&512u16.to_le_bytes()); // root entries
    s[19..21].copy_from_slice(&20480u16.to_le_bytes());
    s[21] = 0xF8;
    s[22..24].copy_from_slice(&20u16.to_le_bytes()); // sectors per FAT
    s[0x26] = 0x29;
    s[0x2B..0x36].copy_from_slice(label);
    s[0x36..0x3E].copy_from_slice(b"FAT16   ");
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

fn iso9660_head(volume_id: &str) -> Vec<u8> {
    let mut head = vec![0u8; LABEL_PROBE_BYTES];
    let pvd = &mut head[32768..];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[8..40].fill(b' '); // system identifier
    let mut id = [b' '; 32];
    id[..volume_id.len()].copy_from_slice(volume_id.as_bytes());
    pvd[40..72].copy_from_slice(&id);
    head
}

#[test]
fn datasource_label_fat32() {
    let mut image = fat32_boot_sector(b"CIDATA     ");
    image.resize(64 * 1024, 0);
    let (kind, label) = filesystem_label(&image).unwrap();
    assert_eq!(kind, FsKind::Vfat);
    assert_eq!(label, "CIDATA");
    assert!(is_nocloud_label(&label));
    assert!(!is_configdrive_label(&label));
    // The boot sector alone is enough.
    assert_eq!(
        filesystem_label(&image[..512]),
        Some((FsKind::Vfat, "CIDATA".to_string()))
    );
    // No label.
    assert_eq!(filesystem_label(&fat32_boot_sector(b"NO NAME    ")), None);
}

#[test]
fn datasource_label_fat16() {
    let image = fat16_boot_sector(b"config-2   ");
    let (kind, label) = filesystem_label(&image).unwrap();
    assert_eq!(kind, FsKind::Vfat);
    assert!(is_configdrive_label(&label));
}

#[test]
fn datasource_label_iso9660() {
    let head = iso9660_head("cidata");
    assert_eq!(head.len(), 34816);
    assert_eq!(
        filesystem_label(&head),
        Some((FsKind::Iso9660, "cidata".to_string()))
    );
    assert_eq!(
        filesystem_label(&iso9660_head("CONFIG-2")).map(|(_, l)| is_configdrive_label(&l)),
        Some(true)
    );
    // Cut short before the volume descriptor ends: not recognised.
    assert_eq!(filesystem_label(&head[..LABEL_PROBE_BYTES - 1]), None);
    // Not "CD001".
    let mut bad = head.clone();
    bad[32769] = b'X';
    assert_eq!(filesystem_label(&bad), None);
}

#[test]
fn datasource_label_nothing() {
    assert_eq!(filesystem_label(&[]), None);
    assert_eq!(filesystem_label(&vec![0u8; LABEL_PROBE_BYTES]), None);
    // An MBR (55AA, but no FAT boot sector).
    let mut mbr = vec![0u8; 512];
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    assert_eq!(filesystem_label(&mbr), None);
    assert!(!is_nocloud_label("Cidata"));
    assert!(!is_nocloud_label("cidata2"));
}

// ---------------------------------------------------------------- precedence

/// A source that records whether it was asked.
struct Probe {
    name: &'static str,
    rank: u8,
    answer: Result<Option<Fetched>, DatasourceError>,
    asked: Cell<bool>,
}

impl Probe {
    fn new(rank: u8, answer: Result<Option<Fetched>, DatasourceError>) -> Probe {
        Probe {
            name: "probe",
            rank,
            answer,
            asked: Cell::new(false),
        }
    }
}

impl Datasource for Probe {
    fn name(&self) -> &'static str {
        self.name
    }
    fn fetch(&self) -> Result<Option<Fetched>, DatasourceError> {
        self.asked.set(true);
        self.answer.clone()
    }
    fn precedence(&self) -> u8 {
        self.rank
    }
}

#[test]
fn datasource_fw_cfg_beats_nocloud_whatever_the_order() {
    let tree = fw_cfg_tree(Some("#cloud-config\nhostname: fw\n"), None);
    let fw = FwCfg::new(tree.path().to_path_buf());
    let nocloud = NoCloud::from_dir(fixture("nocloud-list"));
    let got = fetch_first(&[&nocloud, &fw], &quick()).unwrap().unwrap();
    assert!(got.source.starts_with("fw_cfg"), "{}", got.source);

    let no_fw = FwCfg::new(tempfile::tempdir().unwrap().path().to_path_buf());
    let got = fetch_first(&[&no_fw, &nocloud], &quick()).unwrap().unwrap();
    assert!(got.source.starts_with("NoCloud"), "{}", got.source);
}

#[test]
fn datasource_local_beats_network() {
    // The metadata service would answer, but the seed disk wins and the
    // network is not even asked.
    let server = imds_v2(true);
    let ec2 = Ec2::new(server.url());
    let drive = ConfigDrive::from_dir(fixture("configdrive"));
    let got = fetch_first(&[&ec2, &drive], &quick()).unwrap().unwrap();
    assert!(got.source.starts_with("ConfigDrive"), "{}", got.source);
    assert!(server.requests().is_empty());

    // Without the seed, the metadata service is used.
    let got = fetch_first(&[&ec2], &quick()).unwrap().unwrap();
    assert!(got.source.starts_with("EC2"), "{}", got.source);
}

#[test]
fn datasource_broken_source_stops_the_search() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("meta-data"), "instance-id: [\n").unwrap();
    let broken = NoCloud::from_dir(dir.path().to_path_buf());
    let later = Probe::new(
        datasource::precedence::CONFIG_DRIVE,
        Ok(Some(Fetched::default())),
    );
    let err = fetch_first(&[&later, &broken], &quick()).unwrap_err();
    assert!(err.to_string().contains("meta-data"), "{err}");
    assert!(!later.asked.get(), "a source after a broken one was tried");
}

#[test]
fn datasource_nothing_present() {
    let absent = Probe::new(datasource::precedence::NOCLOUD, Ok(None));
    let ec2 = Ec2::new(closed_port_url());
    assert_eq!(fetch_first(&[&ec2, &absent], &quick()), Ok(None));
    assert!(absent.asked.get());
    assert_eq!(fetch_first(&[], &quick()), Ok(None));
}
