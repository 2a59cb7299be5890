//! The web page in a real headless Chromium (driven through ChromeDriver's WebDriver API):
//! it loads, shows the leaderboard, and updates in place when new matches are ingested over
//! HTTP. Saves a screenshot under the target directory. Needs Debian's `chromium` and
//! `chromium-driver` (`.ci/run` installs them).

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{http, start_with, wait_for};
use serde_json::{json, Value};

struct Driver {
    child: Child,
    addr: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|n| std::path::Path::new(n).exists())
        .map(|n| n.to_string())
}

fn webdriver(d: &Driver, method: &str, path: &str, body: Value) -> Value {
    let body = if method == "GET" || method == "DELETE" {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (_, out) = http(
        &d.addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        &body,
    );
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| val(c) as u32).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |acc, (k, x)| acc | x << (18 - 6 * k));
        for k in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * k)) as u8);
        }
    }
    out
}

#[test]
fn web_page_shows_and_updates_the_leaderboard_in_chromium() {
    let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"])
        .expect("Chromium is needed: apt-get install -y chromium chromium-driver (see .ci/run)");
    let chromedriver = find(&["/usr/bin/chromedriver"])
        .expect("ChromeDriver is needed: apt-get install -y chromium-driver (see .ci/run)");
    let dir = common::league_dir("browser");
    let srv = start_with(&dir, "tok", &["--bounds"]);
    wait_for("the first epoch", || {
        common::json(&srv.addr, "/api/games").1["epoch"].is_u64()
    });
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver {
        child: Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
        addr: format!("127.0.0.1:{port}"),
    };
    wait_for("chromedriver", || {
        std::net::TcpStream::connect(&driver.addr).is_ok()
            && webdriver(&driver, "GET", "/status", Value::Null)["value"]["ready"] == true
    });
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]
        }
    }}});
    let session = webdriver(&driver, "POST", "/session", caps);
    let id = session["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
        .to_string();
    let url = format!("http://{}/", srv.addr);
    webdriver(
        &driver,
        "POST",
        &format!("/session/{id}/url"),
        json!({ "url": url }),
    );
    let rows = || -> Vec<String> {
        let script = "return Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(r => r.dataset.policy)";
        let v = webdriver(
            &driver,
            "POST",
            &format!("/session/{id}/execute/sync"),
            json!({"script": script, "args": []}),
        );
        v["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_for("the leaderboard rows", || rows().len() == 5);
    // Mark the document: a reload would lose the mark, so its survival proves a live update.
    webdriver(
        &driver,
        "POST",
        &format!("/session/{id}/execute/sync"),
        json!({"script": "window.__nashflow_mark = 42; return 1", "args": []}),
    );
    let body = br#"[{"match_id":"b1","game":"negotiation","policy_i":"newcomer","policy_j":"random","payoff_i":0.9,"payoff_j":0.1},
                   {"match_id":"b2","game":"negotiation","policy_i":"newcomer","policy_j":"conceder","payoff_i":0.8,"payoff_j":0.2}]"#;
    let (s, _) = http(
        &srv.addr,
        "POST",
        "/api/matches",
        &[("Authorization", "Bearer tok")],
        body,
    );
    assert_eq!(s, 202);
    wait_for("the newcomer row", || {
        rows().iter().any(|p| p == "newcomer")
    });
    let mark = webdriver(
        &driver,
        "POST",
        &format!("/session/{id}/execute/sync"),
        json!({"script": "return window.__nashflow_mark", "args": []}),
    );
    assert_eq!(mark["value"], 42, "updated in place, without a reload");
    let heat = webdriver(
        &driver,
        "POST",
        &format!("/session/{id}/execute/sync"),
        json!({"script": "return document.querySelectorAll('#heatmap td').length", "args": []}),
    );
    assert_eq!(heat["value"], 36, "6×6 heatmap cells");
    // Under --bounds, `~` marks exactly the ranks and ratings the leaderboard API says are not
    // certified.
    let marks = || -> Value {
        let script = "const g = document.getElementById('game').value; \
            return [g, Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(r => \
            [r.dataset.policy, r.cells[0].textContent.endsWith('~'), r.cells[4].textContent.endsWith('~')])]";
        webdriver(
            &driver,
            "POST",
            &format!("/session/{id}/execute/sync"),
            json!({"script": script, "args": []}),
        )["value"]
            .clone()
    };
    let expected = |game: &str| -> Value {
        let lb = common::json(&srv.addr, &format!("/api/leaderboard?game={game}")).1;
        let rows: Vec<Value> = lb["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                json!([
                    p["policy"],
                    p["rank_certified"] == false,
                    p["rating_certified"] == false
                ])
            })
            .collect();
        json!([game, rows])
    };
    wait_for("the certificate marks", || {
        let m = marks();
        m[0].as_str().is_some_and(|g| m == expected(g))
    });
    let m = marks();
    let lb = common::json(
        &srv.addr,
        &format!("/api/leaderboard?game={}", m[0].as_str().unwrap()),
    )
    .1;
    let certs: Vec<&Value> = lb["policies"].as_array().unwrap().iter().collect();
    assert!(
        certs.iter().any(|p| p["rank_certified"].is_boolean()),
        "bounds are on: {lb}"
    );
    assert!(
        certs.iter().any(|p| p["rating_certified"].is_boolean()),
        "ratings are certified: {lb}"
    );
    assert!(
        m[1].as_array()
            .unwrap()
            .iter()
            .any(|r| r[1] == true || r[2] == true),
        "some mark is shown: {m}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let shot = webdriver(
        &driver,
        "GET",
        &format!("/session/{id}/screenshot"),
        Value::Null,
    );
    let png = base64_decode(shot["value"].as_str().expect("screenshot"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-leaderboard.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
    webdriver(&driver, "DELETE", &format!("/session/{id}"), Value::Null);
}
