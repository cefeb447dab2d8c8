//! Restores: a backup's object checked first, then streamed into a staging database or folder (or a Vault
//! snapshot into a Vault) that replaces the target only at the end.

use super::*;

impl Engine {
    /// Restores a backup. Nothing existing is touched unless `force`, and nothing at all when the object
    /// fails its checks: data lands in a staging database or folder that replaces the target only at the end.
    pub async fn restore(&self, id: Uuid, target: RestoreTarget, force: bool) -> Result<Restored> {
        let (backup, digests) = self.succeeded(id).await?;
        let entry = self.entry(&backup.policy)?;
        let started = Instant::now();
        let reading = self.reading(id, "restore").await?;
        let outcome = match target {
            RestoreTarget::Database { name } => {
                self.restore_database(entry, &backup, &digests, name, force)
                    .await
            }
            RestoreTarget::Folder { path } => self
                .restore_folder(entry, &backup, &digests, &path, force)
                .await
                .map(|bytes| (path.display().to_string(), bytes)),
            RestoreTarget::Vault => self.restore_vault(entry, &backup, &digests, force).await,
        };
        reading.done().await;
        let (target, bytes) = outcome?;
        tracing::info!(backup = %id, %target, bytes, elapsed = ?started.elapsed(), "backup restored");
        Ok(Restored {
            backup_id: id,
            target,
            bytes,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    pub(super) fn postgres_url(entry: &Entry) -> Result<&SecretString> {
        match &entry.policy.source {
            SourceSettings::Postgres { url } => Ok(url),
            _ => Err(EngineError::BadTarget(format!(
                "policy {} backs up {}, which does not restore into a database",
                entry.policy.name.as_str(),
                entry.policy.kind.as_str()
            ))),
        }
    }

    async fn restore_database(
        &self,
        entry: &Entry,
        backup: &Backup,
        digests: &Digests,
        name: Option<String>,
        force: bool,
    ) -> Result<(String, u64)> {
        let url = Self::postgres_url(entry)?;
        let short = &backup.id.simple().to_string()[24..];
        let name = match name {
            Some(name) => name,
            None => {
                // PostgreSQL names hold 63 bytes: the suffix stays whole, the source's name gives way.
                let source = postgres::database_name(url).unwrap_or_else(|| "postgres".into());
                let suffix = format!("_restored_{short}");
                let keep = source.len().min(63 - suffix.len());
                format!("{}{suffix}", &source[..keep])
            }
        };
        if name.is_empty()
            || name.len() > 63
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(EngineError::BadTarget(format!(
                "database name {name:?}: use 1 to 63 lowercase letters, digits and underscores"
            )));
        }
        let mut admin = Self::server(url).await?;
        let exists = database_exists(&mut admin, &name).await?;
        if exists && !force {
            return Err(EngineError::Conflict(format!(
                "database {name} exists; restoring over it replaces its data: add --force, or restore under a new name"
            )));
        }
        let staging = format!("hs_incoming_{short}");
        recreate_database(&mut admin, &staging).await?;
        let restored = self
            .restore_into_database(backup, digests, &postgres::with_database(url, &staging))
            .await;
        if let Err(e) = restored {
            let _ = drop_database(&mut admin, &staging).await;
            return Err(e);
        }
        if exists {
            drop_database(&mut admin, &name).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{staging}\" RENAME TO \"{name}\""
        )))
        .execute(&mut admin)
        .await?;
        Ok((name, digests.plaintext_bytes))
    }

    /// A maintenance connection to the policy's server (its `postgres` database).
    pub(super) async fn server(url: &SecretString) -> Result<PgConnection> {
        use secrecy::ExposeSecret;
        PgConnection::connect(postgres::with_database(url, "postgres").expose_secret())
            .await
            .map_err(|e| io_failed("connecting to the policy's PostgreSQL server", e))
    }

    pub(super) async fn restore_into_database(
        &self,
        backup: &Backup,
        digests: &Digests,
        url: &SecretString,
    ) -> Result<()> {
        let (restore, stdin) =
            postgres::start_restore(url).map_err(|e| io_failed("pg_restore", e))?;
        let streamed = self.read_backup(backup, digests, stdin).await;
        let applied = tokio::task::spawn_blocking(move || restore.finish())
            .await
            .map_err(|e| io_failed("pg_restore", e))?;
        streamed.map_err(|e| io_failed("reading the backup", e))?;
        applied.map_err(|e| io_failed("restoring the database", e))
    }

    async fn restore_folder(
        &self,
        entry: &Entry,
        backup: &Backup,
        digests: &Digests,
        path: &Path,
        force: bool,
    ) -> Result<u64> {
        if !path.is_absolute() {
            return Err(EngineError::BadTarget(format!(
                "folder {}: give an absolute path on the backup service's host",
                path.display()
            )));
        }
        let occupied = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some());
        if occupied && !force {
            return Err(EngineError::Conflict(format!(
                "folder {} is not empty; restoring replaces it: add --force, or choose an empty folder",
                path.display()
            )));
        }
        let parent = path.parent().unwrap_or(Path::new("/"));
        let staging = parent.join(format!(".homestation-incoming-{}", backup.id.simple()));
        std::fs::create_dir_all(&staging)
            .map_err(|e| io_failed(&format!("creating {}", staging.display()), e))?;
        let written = self.write_into(entry, backup, digests, &staging).await;
        let moved = written.and_then(|bytes| {
            if path.exists() {
                std::fs::remove_dir_all(path)
                    .map_err(|e| io_failed(&format!("replacing {}", path.display()), e))?;
            }
            std::fs::rename(&staging, path).map_err(|e| {
                io_failed(&format!("moving the restore into {}", path.display()), e)
            })?;
            Ok(bytes)
        });
        if moved.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        moved
    }

    /// Writes a backup into an existing folder: a folder backup extracted, any other as one file.
    pub(super) async fn write_into(
        &self,
        entry: &Entry,
        backup: &Backup,
        digests: &Digests,
        dir: &Path,
    ) -> Result<u64> {
        if entry.policy.kind == SourceKind::Folder {
            let (tar, stdin) =
                crate::sources::extract_into(dir).map_err(|e| io_failed("tar", e))?;
            let streamed = self.read_backup(backup, digests, stdin).await;
            let extracted = tokio::task::spawn_blocking(move || tar.finish())
                .await
                .map_err(|e| io_failed("tar", e))?;
            let opened = streamed.map_err(|e| io_failed("reading the backup", e))?;
            extracted.map_err(|e| io_failed("extracting the folder", e))?;
            return Ok(opened.plaintext_bytes);
        }
        let extension = match entry.policy.kind {
            SourceKind::Postgres => "dump",
            SourceKind::Vault => "snap",
            SourceKind::JetStream => "jsonl",
            SourceKind::Velero => "json",
            SourceKind::Folder => "tar",
        };
        let file = dir.join(format!("{}-{}.{extension}", backup.policy, backup.id));
        let out = std::fs::File::create(&file)
            .map_err(|e| io_failed(&format!("creating {}", file.display()), e))?;
        let opened = self
            .read_backup(backup, digests, out)
            .await
            .map_err(|e| io_failed("reading the backup", e))?;
        Ok(opened.plaintext_bytes)
    }

    async fn restore_vault(
        &self,
        entry: &Entry,
        backup: &Backup,
        digests: &Digests,
        force: bool,
    ) -> Result<(String, u64)> {
        let SourceSettings::Vault { .. } = &entry.policy.source else {
            return Err(EngineError::BadTarget(format!(
                "policy {} backs up {}, not Vault",
                entry.policy.name.as_str(),
                entry.policy.kind.as_str()
            )));
        };
        if !force {
            return Err(EngineError::Conflict(
                "restoring a Vault snapshot replaces all of Vault's data: add --force".into(),
            ));
        }
        let vault = entry
            .source
            .vault()
            .ok_or_else(|| EngineError::Failed("the policy's Vault is not configured".into()))?;
        // Vault applies a snapshot as it arrives, so the object is checked whole before any of it is sent.
        self.check_object(&backup.bucket, &backup.object_key, digests)
            .await
            .map_err(|e| {
                EngineError::Failed(format!(
                    "the backup did not verify, Vault was not touched: {e}"
                ))
            })?;
        let (sink, chunks) = channel::writer();
        let streamed = self.read_backup(backup, digests, sink);
        let (streamed, applied) = tokio::join!(streamed, vault.restore_snapshot(chunks, true));
        applied.map_err(|e| EngineError::Failed(e.to_string()))?;
        streamed.map_err(|e| io_failed("reading the backup", e))?;
        Ok((vault.address.clone(), digests.plaintext_bytes))
    }
}

pub(super) async fn database_exists(admin: &mut PgConnection, name: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(admin)
            .await?
            .is_some(),
    )
}

/// `name` is checked by the caller or made here of hex digits, so formatting it into DDL is safe.
pub(super) async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(admin)
    .await?;
    Ok(())
}

pub(super) async fn recreate_database(admin: &mut PgConnection, name: &str) -> Result<()> {
    drop_database(admin, name).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(admin)
        .await?;
    Ok(())
}
