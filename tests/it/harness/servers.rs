//! Real servers for build-context sources, on 127.0.0.1: git smart-HTTP over TLS (`git
//! http-backend` behind a small Python TLS front), moto's S3 server, gcp-storage-emulator and
//! Azurite. The Python and npm servers are installed by `scripts/test.sh` under `target/`.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ok, run};

/// The user name that paths under `/basic/` of [`git_server`] accept, with [`GIT_BASIC_PASSWORD`].
pub const GIT_BASIC_USER: &str = "ci-bot";
/// The password of [`GIT_BASIC_USER`]; its `:` and `@` must survive a URL's percent-encoding.
pub const GIT_BASIC_PASSWORD: &str = "pa55:w0rd@gantry";

/// The git front: serves `git http-backend` over TLS; paths under `/private/` need HTTP Basic
/// with the token as username (kaniko's `GIT_TOKEN` convention) and an empty password, paths
/// under `/basic/` need the user and password given on the command line.
const GIT_FRONT: &str = r#"
import base64, http.server, os, ssl, subprocess, sys
root, port, cert, key, token, user, password = sys.argv[1:8]
basic = lambda u, p: 'Basic ' + base64.b64encode((u + ':' + p).encode()).decode()
want = {'/private/': basic(token, ''), '/basic/': basic(user, password)}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    def do_GET(self): self.cgi()
    def do_POST(self): self.cgi()
    def log_message(self, *a): pass
    def cgi(self):
        path, _, query = self.path.partition('?')
        needed = [w for prefix, w in want.items() if path.startswith(prefix)]
        if needed and self.headers.get('Authorization', '') != needed[0]:
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
/// (returned with the server); `/private/...` needs `token`, `/basic/...` needs
/// [`GIT_BASIC_USER`] and [`GIT_BASIC_PASSWORD`].
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
        GIT_BASIC_USER.to_string(),
        GIT_BASIC_PASSWORD.to_string(),
    ];
    (spawn(dir, "git", Path::new("python3"), &args, &[]), ca)
}

/// moto's S3 server (`moto[server]`), recording every request it receives (headers included)
/// for [`moto_requests`].
pub fn moto(dir: &Path) -> Server {
    let bin = tools_dir().join("venv/bin/moto_server");
    let recording = dir.join("moto-recording.jsonl");
    let recording = recording.display().to_string();
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
        &[
            ("MOTO_ENABLE_RECORDING", "true"),
            ("MOTO_RECORDER_FILEPATH", recording.as_str()),
        ],
    )
}

/// The requests moto recorded (see [`moto`]): one JSON object each, with `method`, `url` and
/// `headers`.
pub fn moto_requests(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("moto-recording.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("moto recording line is JSON"))
        .collect()
}

/// Creates an IAM user allowed `s3:*` in moto, with an access key; returns (key id, secret).
/// Until [`moto_enforce_auth`] moto accepts any request, signed or not.
pub fn moto_iam_user(moto: &Server) -> (String, String) {
    const SETUP: &str = r#"
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1',
          aws_access_key_id='setup', aws_secret_access_key='setup')
iam = boto3.client('iam', **kw)
iam.create_user(UserName='ctx-reader')
iam.put_user_policy(UserName='ctx-reader', PolicyName='read', PolicyDocument=json.dumps(
    {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}]}))
k = iam.create_access_key(UserName='ctx-reader')['AccessKey']
print(k['AccessKeyId'], k['SecretAccessKey'])
"#;
    let out = ok(run(Command::new(tools_dir().join("venv/bin/python"))
        .args(["-c", SETUP])
        .arg(format!("http://{}", moto.addr()))));
    let (id, secret) = out.trim().split_once(' ').expect("key id and secret");
    (id.to_string(), secret.to_string())
}

/// From now on moto checks every request's AWS Signature Version 4 against its IAM users (its
/// `/moto-api/reset-auth` switch, `INITIAL_NO_AUTH_ACTION_COUNT` set to 0).
pub fn moto_enforce_auth(moto: &Server) {
    ok(run(Command::new("curl")
        .args(["-sS", "-f", "-X", "POST", "-H", "Content-Type: text/plain"])
        .args(["--data-binary", "0"])
        .arg(format!(
            "http://{}/moto-api/reset-auth",
            moto.addr()
        ))));
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

/// The OAuth 2.0 token endpoint and bearer check that gcp-storage-emulator lacks, in front of it.
/// `POST /token` takes a JWT-bearer grant (RFC 7523) and answers an access token only when the
/// assertion is signed with the service account's key (verified with its public key) and its
/// claims are right; every other request is relayed to the emulator only with a bearer token
/// this front issued, and answered 401 otherwise. Each decision is logged, never the tokens.
const GCS_FRONT: &str = r#"
import base64, http.server, json, secrets, sys, time, urllib.error, urllib.parse, urllib.request
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
port, upstream, public_key, email = sys.argv[1:5]
pub = serialization.load_pem_public_key(open(public_key, 'rb').read())
token_uri = 'http://127.0.0.1:%s/token' % port
scope = 'https://www.googleapis.com/auth/devstorage.read_only'
issued = set()
def b64(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
def log(*a): print(*a, flush=True)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    def log_message(self, *a): pass
    def answer(self, status, body, ctype='application/json'):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        if self.path != '/token':
            return self.relay()
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get('Content-Length') or 0)).decode())
        try:
            assert form['grant_type'] == ['urn:ietf:params:oauth:grant-type:jwt-bearer'], 'grant_type'
            head, claims, sig = form['assertion'][0].split('.')
            pub.verify(b64(sig), (head + '.' + claims).encode(), padding.PKCS1v15(), hashes.SHA256())
            head, claims = json.loads(b64(head)), json.loads(b64(claims))
            assert head['alg'] == 'RS256', 'alg'
            assert claims['iss'] == email, 'iss'
            assert claims['aud'] == token_uri, 'aud'
            assert claims['scope'] == scope, 'scope'
            assert claims['iat'] <= time.time() + 60 < claims['exp'] + 60, 'iat/exp'
        except Exception as e:
            log('token refused:', type(e).__name__, e)
            return self.answer(400, json.dumps({'error': 'invalid_grant',
                'error_description': 'Invalid JWT Signature.'}).encode())
        token = 'ya29.gantry-test-' + secrets.token_urlsafe(24)
        issued.add(token)
        log('token issued to', email)
        self.answer(200, json.dumps({'access_token': token, 'expires_in': 3600,
                                     'token_type': 'Bearer'}).encode())
    def do_GET(self): self.relay()
    def relay(self):
        auth = self.headers.get('Authorization', '')
        if not (auth.startswith('Bearer ') and auth[7:] in issued):
            log(self.command, self.path, 'refused: no issued bearer token')
            return self.answer(401, json.dumps({'error': {'code': 401,
                'message': 'Anonymous caller does not have storage.objects.get access'}}).encode())
        log(self.command, self.path, 'with an issued bearer token')
        req = urllib.request.Request(upstream + self.path, method=self.command)
        try:
            resp = urllib.request.urlopen(req)
        except urllib.error.HTTPError as e:
            resp = e
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            if k.lower() not in ('transfer-encoding', 'connection', 'content-length'):
                self.send_header(k, v)
        self.end_headers()
        while True:
            chunk = resp.read(65536)
            if not chunk:
                break
            self.wfile.write(chunk)
http.server.ThreadingHTTPServer(('127.0.0.1', int(port)), H).serve_forever()
"#;

/// A Google service account for [`gcs_auth_front`]: its key file (`GOOGLE_APPLICATION_CREDENTIALS`)
/// and, signed by another key, a key file the front refuses.
pub struct GcsAccount {
    pub server: Server,
    pub key_file: PathBuf,
    pub wrong_key_file: PathBuf,
    /// The PEM of the right private key, to grep for.
    pub private_key_pem: String,
}

/// Starts [`GCS_FRONT`] before the emulator at `upstream` (`host:port`) with a fresh 2048-bit
/// RSA service-account key made by openssl; the key files' `token_uri` is the front's.
pub fn gcs_auth_front(dir: &Path, upstream: &str) -> GcsAccount {
    const EMAIL: &str = "ctx-reader@gantry-test.iam.gserviceaccount.com";
    let key = |name: &str| {
        let path = dir.join(name);
        ok(run(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&path)));
        path
    };
    let (right, wrong) = (key("sa-key.pem"), key("sa-wrong-key.pem"));
    let public = dir.join("sa-public.pem");
    ok(run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&right)
        .arg("-out")
        .arg(&public)));
    let args = vec![
        "-c".to_string(),
        GCS_FRONT.to_string(),
        "{port}".to_string(),
        format!("http://{upstream}"),
        public.display().to_string(),
        EMAIL.to_string(),
    ];
    let server = spawn(
        dir,
        "gcs-front",
        &tools_dir().join("venv/bin/python"),
        &args,
        &[],
    );
    let key_file = |name: &str, pem: &Path| {
        let path = dir.join(name);
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": "gantry-test",
            "private_key_id": "0123456789abcdef",
            "private_key": std::fs::read_to_string(pem).unwrap(),
            "client_email": EMAIL,
            "client_id": "100000000000000000001",
            "token_uri": format!("http://{}/token", server.addr()),
        });
        std::fs::write(&path, json.to_string()).unwrap();
        path
    };
    GcsAccount {
        key_file: key_file("sa.json", &right),
        wrong_key_file: key_file("sa-wrong.json", &wrong),
        private_key_pem: std::fs::read_to_string(&right).unwrap(),
        server,
    }
}

/// A port on 127.0.0.1 that nothing listens on: bound, then released.
pub fn closed_port() -> u16 {
    free_port()
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
