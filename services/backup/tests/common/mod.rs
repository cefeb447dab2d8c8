//! A SeaweedFS S3 server of the test's own with one bucket, and a key-encryption key made for the test.
#![allow(dead_code)] // each test file uses a different part

use std::sync::Arc;

use backup::format::{KeyWrap, LocalKey};
use backup::s3::S3Settings;
use secrecy::SecretString;

/// The server (keep it alive for the test) and a client with `bucket` created.
pub async fn s3_with_bucket(bucket: &str) -> (testkit::S3Server, aws_sdk_s3::Client) {
    let server = testkit::s3().await;
    let client = S3Settings {
        endpoint: Some(server.endpoint.clone()),
        access_key_id: "test-made-up".into(),
        secret_access_key: SecretString::from("test-made-up-too".to_owned()),
        ..Default::default()
    }
    .client();
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket");
    (server, client)
}

/// A key-encryption key of constant bytes: these tests check framing, not key secrecy.
pub fn test_key() -> Arc<dyn KeyWrap> {
    Arc::new(LocalKey::new("kek-test", &[5; 32]))
}

/// Incompressible bytes from a xorshift generator seeded with `seed`, so sizes map onto chunks and parts predictably.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The backup service running against this test's PostgreSQL database, NATS namespace and S3 server (SeaweedFS).
pub struct TestBackup {
    pub base: String,
    pub env: testkit::TestEnv,
    pub pool: sqlx::PgPool,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub client: reqwest::Client,
    pub scratch: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    pub s3_settings: S3Settings,
    _s3_server: testkit::S3Server,
    app: Option<testkit::RunningApp>,
}

/// A key file of 32 random bytes made for this test, in `dir`.
pub fn key_file(dir: &std::path::Path) -> std::path::PathBuf {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut key).unwrap();
    let path = dir.join("backup.key");
    std::fs::write(&path, key).unwrap();
    path
}

pub fn scratch_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("hs-backup-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestBackup {
    /// Starts the service with `policies` (as they would be written in its config, in JSON).
    pub async fn start(policies: serde_json::Value) -> Self {
        let env = testkit::TestEnv::new().await;
        let bucket = "backups".to_owned();
        let (server, s3) = s3_with_bucket(&bucket).await;
        let s3_settings = S3Settings {
            endpoint: Some(server.endpoint.clone()),
            access_key_id: "test-made-up".into(),
            secret_access_key: SecretString::from("test-made-up-too".to_owned()),
            part_size_mib: 5,
            ..Default::default()
        };
        let scratch = scratch_dir();
        let key_file = key_file(&scratch);
        let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();
        let mut this = Self {
            base: String::new(),
            pool,
            s3,
            bucket,
            client: testkit::http_client(),
            key_file,
            s3_settings,
            scratch,
            env,
            _s3_server: server,
            app: None,
        };
        this.restart_with(policies, None).await;
        this
    }

    pub fn config(
        &self,
        policies: serde_json::Value,
        key_file: Option<&std::path::Path>,
    ) -> backup::Config {
        backup::Config {
            http: service_kit::HttpSettings::with_port(0),
            database: self.env.database(),
            nats: self.env.nats("backup"),
            auth: self.env.auth(),
            s3: self.s3_settings.clone(),
            bucket: self.bucket.clone(),
            encryption: backup::EncryptionSettings {
                key_file: Some(key_file.unwrap_or(&self.key_file).to_owned()),
                ..Default::default()
            },
            policies: serde_json::from_value(policies).expect("policies parse"),
            scratch_dir: self.scratch.join("drills"),
            shutdown_grace_secs: 5,
            ..Default::default()
        }
    }

    /// Stops the running service (if any) and starts it again with these policies and key.
    pub async fn restart_with(
        &mut self,
        policies: serde_json::Value,
        key_file: Option<&std::path::Path>,
    ) {
        use service_kit::Service;
        if let Some(app) = self.app.take() {
            app.stop().await.expect("backup stops cleanly");
        }
        let app = backup::Application::build(self.config(policies, key_file))
            .await
            .expect("backup builds");
        self.base = format!("http://{}", app.http_addr());
        self.app = Some(testkit::spawn(app));
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = self
            .request(reqwest::Method::GET, path, &self.env.tokens.viewer, None)
            .await;
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    /// The service's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await;
        response
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Starts a run of `policy` and waits until its last try finished; returns that try.
    pub async fn run(&self, policy: &str) -> serde_json::Value {
        let (status, started) = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/policies/{policy}/runs"),
                &self.env.tokens.developer,
                None,
            )
            .await;
        assert_eq!(status, 202, "{started}");
        self.settled(policy).await
    }

    /// Waits until `policy` has no run in progress, and returns its newest try.
    pub async fn settled(&self, policy: &str) -> serde_json::Value {
        testkit::eventually(
            "the run to finish",
            std::time::Duration::from_secs(120),
            || async {
                let policies = self.get("/v1/policies").await;
                let p = policies
                    .as_array()?
                    .iter()
                    .find(|p| p["name"] == policy)?
                    .clone();
                (p["running"].is_null()
                    && !p["last_run"].is_null()
                    && p["last_run"]["status"] != "running")
                    .then(|| p["last_run"].clone())
            },
        )
        .await
    }

    /// Waits until an event with this subject has been published `count` times.
    pub async fn await_events(&self, subject: &str, count: usize) -> Vec<serde_json::Value> {
        self.env
            .await_events(bus::Stream::Backup, subject, count)
            .await
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await.expect("backup stops cleanly");
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// A database on the test PostgreSQL with a table of `rows` rows; returns its URL.
pub async fn database_with_rows(rows: i64) -> testkit::TestDatabase {
    let db = testkit::database().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE nodes (id bigint PRIMARY KEY, name text NOT NULL);
         INSERT INTO nodes SELECT g, 'node-' || g FROM generate_series(1, 100) g;",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM nodes WHERE id > $1")
        .bind(rows)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    db
}

pub async fn count_rows(url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM nodes")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}
