//! Real servers for build-context sources, on 127.0.0.1: git smart-HTTP over TLS (`git
//! http-backend` behind a small Python TLS front), moto's S3 server, gcp-storage-emulator and
//! Azurite. The Python and npm servers are installed by `scripts/test.sh` under `target/`.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ok, run};

/// The git front: serves `git http-backend` over TLS; paths under `/private/` need HTTP Basic
/// with the token as username (kaniko's `GIT_TOKEN` convention) and an empty password.
const GIT_FRONT: &str = r#"
import base64, http.server, os, ssl, subprocess, sys
root, port, cert, key, token = sys.argv[1:6]
want = 'Basic ' + base64.b64encode((token + ':').encode()).decode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    def do_GET(self): self.cgi()
    def do_POST(self): self.cgi()
    def log_message(self, *a): pass
    def cgi(self):
        path, _, query = self.path.partition('?')
        if path.startswith('/private/') and self.headers.get('Authorization', '') != want:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="git"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            body = b''
            while True:
                size = int(self.rfile.readline().strip().split(b';')[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL='1', PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_ADDR='127.0.0.1',
                   CONTENT_TYPE=self.headers.get('Content-Type', ''), CONTENT_LENGTH=str(len(body)))
        if self.headers.get('Content-Encoding'):
            env['HTTP_CONTENT_ENCODING'] = self.headers.get('Content-Encoding')
        if self.headers.get('Git-Protocol'):
            env['GIT_PROTOCOL'] = self.headers.get('Git-Protocol')
        out = subprocess.run(['git', 'http-backend'], input=body, env=env, capture_output=True).stdout
        sep = b'\r\n\r\n' if b'\r\n\r\n' in out else b'\n\n'
        head, _, rest = out.partition(sep)
        status, headers = 200, []
        for line in head.replace(b'\r\n', b'\n').split(b'\n'):
            k, _, v = line.decode().partition(':')
            if k.lower() == 'status':
                status = int(v.strip().split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)
srv = http.server.ThreadingHTTPServer(('127.0.0.1', int(port)), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

/// A child server process, killed when dropped.
pub struct Server {
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Server {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Starts `cmd` (with `{port}` in its arguments replaced) and waits until the port accepts
/// connections.
fn spawn(dir: &Path, name: &str, program: &Path, args: &[String], envs: &[(&str, &str)]) -> Server {
    let port = free_port();
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{port}", &port.to_string()))
        .collect();
    let child = Command::new(program)
        .args(&args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}\nhint: run scripts/test.sh once to install the test servers", program.display()));
    let mut server = Server { port, child, log };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "{name} exited ({status}) before listening:\n{}",
                server.log()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} did not listen within 60s:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// The directory `scripts/test.sh` installs the test servers in.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-servers")
}

/// Serves the bare repositories under `root` over HTTPS with a certificate from the harness CA
/// (returned by [`Server::log`]'s sibling `ca`); `/private/...` needs `token`.
pub fn git_server(dir: &Path, root: &Path, token: &str) -> (Server, PathBuf) {
    let (ca, cert, key) = super::registry::make_tls_files(dir);
    let script = dir.join("git_front.py");
    std::fs::write(&script, GIT_FRONT).unwrap();
    let args = vec![
        script.display().to_string(),
        root.display().to_string(),
        "{port}".to_string(),
        cert.display().to_string(),
        key.display().to_string(),
        token.to_string(),
    ];
    (spawn(dir, "git", Path::new("python3"), &args, &[]), ca)
}

/// moto's S3 server (`moto[server]`).
pub fn moto(dir: &Path) -> Server {
    let bin = tools_dir().join("venv/bin/moto_server");
    spawn(
        dir,
        "moto",
        &bin,
        &[
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            "{port}".into(),
        ],
        &[],
    )
}

/// gcp-storage-emulator, in memory.
pub fn gcs_emulator(dir: &Path) -> Server {
    let bin = tools_dir().join("venv/bin/gcp-storage-emulator");
    spawn(
        dir,
        "gcs",
        &bin,
        &[
            "start".into(),
            "--host=127.0.0.1".into(),
            "--port={port}".into(),
            "--in-memory".into(),
        ],
        &[],
    )
}

/// Azurite's blob service, keeping its data in the test's directory.
pub fn azurite(dir: &Path) -> Server {
    let bin = tools_dir().join("npm/node_modules/.bin/azurite-blob");
    spawn(
        dir,
        "azurite",
        &bin,
        &[
            "--blobHost".into(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            "{port}".into(),
            "--skipApiVersionCheck".into(),
            "--location".into(),
            dir.join("azurite").display().to_string(),
        ],
        &[],
    )
}

/// Runs git with a fixed identity and dates, so commits are the same on every run.
pub fn git(dir: &Path, args: &[&str]) -> String {
    ok(run(Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=gantry",
            "-c",
            "user.email=t@gantry.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")))
}

/// Makes a commit of `files` in a new work tree `work` and publishes it as the bare repository
/// `bare`. Returns the commit id.
pub fn publish_repo(work: &Path, bare: &Path, files: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(work).unwrap();
    git(work, &["init", "-q"]);
    super::write_files(work, files);
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", "context"]);
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(
        work.parent().unwrap(),
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &bare.display().to_string(),
        ],
    );
    git(work, &["rev-parse", "HEAD"]).trim().to_string()
}

/// A gzip tar of the directory `dir`, made with the system's tar.
pub fn tar_gz(dir: &Path, out: &Path) {
    ok(run(Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-czf"])
        .arg(out)
        .arg(".")));
}

/// Reads the first line a child prints, for servers that announce readiness.
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    if let Some(out) = child.stdout.as_mut() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    line
}
