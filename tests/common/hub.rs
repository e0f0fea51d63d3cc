//! A minimal stand-in for the Hugging Face Hub on 127.0.0.1: serves files under
//! `/{repo}/resolve/main/{file}` with the headers hf-hub reads (ETag, X-Repo-Commit,
//! Content-Range) and honours `Range: bytes=N-`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serves every file in full.
    Healthy,
    /// Sends only the first `n` bytes of the body of `model.safetensors`, then hangs up.
    CutWeightsAfter(usize),
}

/// Every `(path, range header)` requested, in order.
pub type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A running server.
pub struct Hub {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// What was requested.
    pub requests: RequestLog,
}

/// Serves the files of `model_dir` as repository `repo`.
pub fn serve(repo: &str, model_dir: &Path, mode: Mode) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let mut files = HashMap::new();
    for name in ["config.json", "model.safetensors"] {
        let body = std::fs::read(model_dir.join(name)).unwrap();
        files.insert(format!("/{repo}/resolve/main/{name}"), (body, name.to_owned()));
    }
    let files = Arc::new(files);
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (files, log) = (files.clone(), log.clone());
            std::thread::spawn(move || handle(stream, &files, &log, mode));
        }
    });
    Hub { endpoint, requests }
}

fn handle(
    mut stream: TcpStream,
    files: &HashMap<String, (Vec<u8>, String)>,
    log: &Mutex<Vec<(String, Option<String>)>>,
    mode: Mode,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut range = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("range")
            {
                range = Some(value.trim().to_owned());
            }
        }
        log.lock().unwrap().push((path.clone(), range.clone()));
        let Some((body, name)) = files.get(&path) else {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        let (start, end) = parse_range(range.as_deref(), body.len());
        let etag = format!("{:x}", md5ish(body));
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\n\
             ETag: \"{etag}\"\r\nX-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\n\
             Accept-Ranges: bytes\r\n\r\n",
            end - start,
            end - 1,
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let slice = &body[start..end];
        match mode {
            Mode::CutWeightsAfter(n) if name == "model.safetensors" && end - start > 1 => {
                let _ = stream.write_all(&slice[..n.min(slice.len())]);
                let _ = stream.flush();
                return;
            }
            _ => {
                let _ = stream.write_all(slice);
            }
        }
        let _ = stream.flush();
    }
}

fn parse_range(range: Option<&str>, len: usize) -> (usize, usize) {
    let Some(spec) = range.and_then(|r| r.strip_prefix("bytes=")) else { return (0, len) };
    let (from, to) = spec.split_once('-').unwrap_or((spec, ""));
    let start: usize = from.parse().unwrap_or(0).min(len);
    let end = to.parse::<usize>().map_or(len, |t| (t + 1).min(len));
    (start, end)
}

/// A content fingerprint for the ETag (any stable function of the bytes will do).
fn md5ish(bytes: &[u8]) -> u128 {
    bytes.iter().fold(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d_u128, |h, &b| {
        (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B)
    })
}
