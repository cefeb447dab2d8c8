//! Contexts and completions, through the binary: the config file it reads and writes (a temporary one per
//! test, through HOMESTATION_CONFIG), what wins over what, and the errors. No server is needed: where a
//! command reaches for one, the error names the URL and token file the context gave.

use std::path::{Path, PathBuf};
use std::process::Output;

fn homestation(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_homestation"));
    command.args(args).env("HOMESTATION_CONFIG", config);
    for var in [
        "HOMESTATION_TOKEN",
        "HOMESTATION_TOKEN_FILE",
        "HOMESTATION_CONTEXT",
        "HOMESTATION_SERVER",
        "HOMESTATION_EDGE_SERVER",
        "HOMESTATION_BACKUP_SERVER",
        "HOMESTATION_SECRETS_SERVER",
        "HOMESTATION_DEPLOY_SERVER",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("the CLI runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hs-context-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn contexts_are_set_listed_used_shown_and_deleted() {
    let dir = scratch();
    let config = dir.join("homestation/config.toml");
    let empty = homestation(&config, &[], &["context", "list"]);
    assert!(
        empty.status.success() && stdout(&empty).contains("no contexts"),
        "{}",
        stdout(&empty)
    );

    let set = homestation(
        &config,
        &[],
        &[
            "context",
            "set",
            "lab",
            "--domain",
            "homestation.example.org",
            "--token-file",
            "/etc/hs/lab.token",
        ],
    );
    assert!(set.status.success(), "{}", stderr(&set));
    let set = homestation(
        &config,
        &[],
        &[
            "context",
            "set",
            "dev",
            "--url",
            "inventory=http://127.0.0.1:8080/",
            "--url",
            "backup=http://127.0.0.1:8083",
        ],
    );
    assert!(set.status.success(), "{}", stderr(&set));
    // The first context made is the current one; the file holds a token file's path, never a token.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("current = \"lab\"") && text.contains("token_file = \"/etc/hs/lab.token\""),
        "{text}"
    );
    let list = stdout(&homestation(&config, &[], &["context", "list"]));
    assert!(list.contains("* lab") && list.contains("  dev"), "{list}");

    let shown = stdout(&homestation(&config, &[], &["context", "show"]));
    assert!(shown.contains("context: lab"), "{shown}");
    assert!(
        shown.contains("inventory        https://inventory.homestation.example.org"),
        "{shown}"
    );
    assert!(
        shown.contains("deployer         https://deploy.homestation.example.org"),
        "{shown}"
    );
    assert!(
        shown.contains("token file       /etc/hs/lab.token"),
        "{shown}"
    );

    // A variable wins over the context; --context picks another one for one command.
    let overridden = stdout(&homestation(
        &config,
        &[("HOMESTATION_BACKUP_SERVER", "http://10.0.0.9:8083")],
        &["context", "show"],
    ));
    assert!(
        overridden.contains("backup           http://10.0.0.9:8083"),
        "{overridden}"
    );
    let dev = stdout(&homestation(
        &config,
        &[],
        &["--context", "dev", "context", "show"],
    ));
    assert!(
        dev.contains("inventory        http://127.0.0.1:8080\n"),
        "{dev}"
    );
    assert!(
        dev.contains("secrets-rotator  http://127.0.0.1:8085"),
        "{dev}"
    );

    let used = homestation(&config, &[], &["context", "use", "dev"]);
    assert!(used.status.success(), "{}", stderr(&used));
    assert!(stdout(&homestation(&config, &[], &["context", "show"])).contains("context: dev"));
    let deleted = homestation(&config, &[], &["context", "delete", "dev"]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let shown = stdout(&homestation(&config, &[], &["context", "show"]));
    assert!(shown.contains("context: none"), "{shown}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_names_and_files_are_errors_that_say_what_exists() {
    let dir = scratch();
    let config = dir.join("config.toml");
    homestation(
        &config,
        &[],
        &[
            "context",
            "set",
            "lab",
            "--domain",
            "homestation.example.org",
        ],
    );
    let unknown = homestation(&config, &[], &["context", "use", "lba"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no context \"lba\": known are lab"),
        "{}",
        stderr(&unknown)
    );
    let through_variable = homestation(&config, &[("HOMESTATION_CONTEXT", "garage")], &["status"]);
    assert_eq!(through_variable.status.code(), Some(2));
    assert!(
        stderr(&through_variable).contains("known are lab"),
        "{}",
        stderr(&through_variable)
    );
    let bad_url = homestation(
        &config,
        &[],
        &["context", "set", "x", "--url", "vault=http://v"],
    );
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(
        stderr(&bad_url).contains("no service \"vault\""),
        "{}",
        stderr(&bad_url)
    );

    std::fs::write(
        &config,
        "current = \"lab\"\n[contexts.lab]\ntoken = \"not here\"\n",
    )
    .unwrap();
    let broken = homestation(&config, &[], &["context", "list"]);
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        stderr(&broken).contains("unknown field `token`"),
        "{}",
        stderr(&broken)
    );
    let status = homestation(&config, &[], &["status"]);
    assert_eq!(status.status.code(), Some(2));
    assert!(
        stderr(&status).contains("unknown field `token`"),
        "{}",
        stderr(&status)
    );
    // Local commands need no config file, so a broken one does not stop them.
    assert!(
        homestation(&config, &[], &["completions", "bash"])
            .status
            .success()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_command_reaches_for_the_context_s_url_with_its_token_file() {
    let dir = scratch();
    let config = dir.join("config.toml");
    let token = dir.join("lab.token");
    homestation(
        &config,
        &[],
        &[
            "context",
            "set",
            "lab",
            "--url",
            "inventory=http://127.0.0.1:1",
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    let no_file = homestation(&config, &[], &["status"]);
    assert_eq!(no_file.status.code(), Some(2));
    assert!(
        stderr(&no_file).contains(&format!("cannot read the token file {}", token.display())),
        "{}",
        stderr(&no_file)
    );
    std::fs::write(&token, "made-up-for-this-test\n").unwrap();
    let unreachable = homestation(&config, &[], &["status"]);
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(
        stderr(&unreachable).contains("cannot reach http://127.0.0.1:1"),
        "{}",
        stderr(&unreachable)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn completions_for_bash_zsh_and_fish_know_the_commands() {
    let dir = scratch();
    let config = dir.join("config.toml");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef homestation"),
        ("fish", "complete -c homestation"),
    ] {
        let out = homestation(&config, &[], &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["context", "backup", "deploy", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let unknown = homestation(&config, &[], &["completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}
