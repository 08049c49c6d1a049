//! The worker's attachment step: an `Attached` event (a webhook, a poll, a redelivery, the
//! echo of Tandem's own upload) reconciles the files of the item's pair (see
//! `tandem_core::attachment` for the rules).
//!
//! The step lists both items' attachments, hashes the unlinked files whose listing gives no
//! hash (streaming each to a temporary file, which is then what an upload sends), plans
//! against the store's attachment links, and carries the plan out one action at a time, each
//! recorded as it goes: an upload's link is stored as pending *before* the upload and
//! completed after it, so a crash, a `kill -9` mid-upload or a lost answer leaves a state the
//! next reconcile finishes (adopting the twin that landed) instead of repeating.
//!
//! Memory stays flat whatever the file size: a download is copied to disk a chunk at a time
//! and an upload is read back from disk a buffer at a time (`connector::files`).

use super::{ConnectionRuntime, Engine, Failure, Outcome};
use crate::connector::Connector;
use crate::connector::files::Upload;
use crate::store::{AuditEntry, EventStatus, QueuedEvent, StoreError};
use chrono::Utc;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tandem_core::attachment::{
    Attachment, AttachmentAction, AttachmentInput, AttachmentLink, AttachmentLinkState,
    AttachmentSync, needs_hash, plan_attachments,
};
use tandem_core::{FieldValue, Link, Side};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info};

/// A file copied to disk while hashing; the copy is removed when this is dropped.
struct LocalCopy {
    path: PathBuf,
    sha256: String,
    size: u64,
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        // Best effort: a copy left behind by a crash is in the temporary directory, named
        // as Tandem's, and holds nothing the systems do not.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The name every temporary copy starts with, then `{pid}-{random}`.
const COPY_PREFIX: &str = "tandem-attachment-";

/// Removes the temporary copies a killed process left behind: those whose process is gone.
/// Linux only (where `/proc` tells which processes live); elsewhere nothing is removed, as a
/// live instance's copy cannot be told from a dead one's.
fn sweep_stale_copies(dir: &std::path::Path) -> usize {
    if !std::path::Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(COPY_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Where a temporary copy goes: the system's temporary directory, one fresh name per copy.
/// The first call sweeps the copies of processes that are gone.
fn temp_path() -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let n = sweep_stale_copies(&std::env::temp_dir());
        if n > 0 {
            info!(
                removed = n,
                "removed temporary attachment copies of stopped processes"
            );
        }
    });
    std::env::temp_dir().join(format!(
        "{COPY_PREFIX}{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

/// Copies attachment `a` of item `item` on `connector` to a temporary file, hashing it on
/// the way, never holding more than one chunk. Refuses a file that turns out larger than
/// `max_bytes` (its listing said less) or of another size than listed.
async fn copy_to_disk(
    connector: &dyn Connector,
    item: &str,
    a: &Attachment,
    max_bytes: u64,
) -> Result<LocalCopy, Failure> {
    let mut download = connector.download_attachment(item, a).await?;
    let path = temp_path();
    let io = |e: std::io::Error| Failure::Transient {
        message: format!(
            "could not write the temporary copy of `{}`: {e}",
            a.filename
        ),
        retry_after: None,
    };
    let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
    // Owned from here on, so that a failure below removes the partial copy.
    let mut copy = LocalCopy {
        path,
        sha256: String::new(),
        size: 0,
    };
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = download.next_chunk().await? {
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(Failure::Permanent(format!(
                "attachment `{}` ({}) is larger than attachment_max_bytes ({max_bytes}) \
                 though listed as {} bytes",
                a.filename, a.id, a.size
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    drop(file);
    if size != a.size {
        // A download cut short reads as a smaller file: never upload it as the file.
        return Err(Failure::Transient {
            message: format!(
                "attachment `{}` ({}): downloaded {size} bytes, listed as {}",
                a.filename, a.id, a.size
            ),
            retry_after: None,
        });
    }
    copy.sha256 = hex::encode(hasher.finalize());
    copy.size = size;
    Ok(copy)
}

impl Engine {
    /// Handles an `Attached` event: reconciles the attachments of the item's pair.
    pub(super) async fn sync_attachments(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        if conn.attachments.sync == AttachmentSync::Off {
            return self.ignore(queued, "attachments are not synced").await;
        }
        let Some(pair) = self
            .store
            .link_by_item(&conn.name, event.source, &event.item_id)
            .await?
        else {
            // Not linked (yet): when it is, the next attachment event or poll of the pair
            // brings its files across.
            return self.ignore(queued, "the item is not linked").await;
        };
        if self.moved_to_link_key(queued, &pair).await? {
            return Ok(Outcome::Requeued);
        }
        let links = self
            .store
            .attachment_links(&conn.name, &pair.jira_id)
            .await?;
        let mut jira = conn.jira.list_attachments(&pair.jira_id).await?;
        let mut external = conn.external.list_attachments(&pair.external_id).await?;

        // The identity of every unlinked file that may travel, hashing what the listing did
        // not say (the copy is kept for the upload).
        let wanted = needs_hash(&AttachmentInput {
            jira: &jira,
            external: &external,
            links: &links,
            settings: &conn.attachments,
        });
        let mut copies: BTreeMap<(Side, String), LocalCopy> = BTreeMap::new();
        for (side, id) in wanted {
            let list = match side {
                Side::Jira => &mut jira,
                Side::External => &mut external,
            };
            let Some(a) = list.iter_mut().find(|a| a.id == id) else {
                continue;
            };
            let copy = copy_to_disk(
                &**conn.side(side),
                item_on(side, &pair),
                a,
                conn.attachments.max_bytes,
            )
            .await?;
            a.sha256 = Some(copy.sha256.clone());
            copies.insert((side, id), copy);
        }
        let actions = plan_attachments(&AttachmentInput {
            jira: &jira,
            external: &external,
            links: &links,
            settings: &conn.attachments,
        });
        let mut done = Done::default();
        for action in actions {
            self.carry_out_attachment(
                conn,
                queued,
                &pair,
                &links,
                (&jira, &external),
                &mut copies,
                action,
                &mut done,
            )
            .await?;
        }
        if done.audit.is_empty() {
            let note = if done.notes.is_empty() {
                "attachments are in step".to_string()
            } else {
                format!("attachments are in step; {}", done.notes.join("; "))
            };
            return self.ignore(queued, &note).await;
        }
        self.finish(
            queued,
            EventStatus::Done,
            None,
            done.audit,
            &done.notes.join("; "),
            None,
        )
        .await
    }

    /// Carries out one planned action, recording it in the store as it goes.
    #[allow(clippy::too_many_arguments)]
    async fn carry_out_attachment(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        pair: &Link,
        links: &[AttachmentLink],
        (jira, external): (&[Attachment], &[Attachment]),
        copies: &mut BTreeMap<(Side, String), LocalCopy>,
        action: AttachmentAction,
        done: &mut Done,
    ) -> Result<(), Failure> {
        let store = &self.store;
        let (j, e) = (pair.jira_id.as_str(), pair.external_id.as_str());
        let stored = |id: i64| links.iter().find(|l| l.id == id).cloned();
        let listed = |side: Side, id: &str| {
            let list = match side {
                Side::Jira => jira,
                Side::External => external,
            };
            list.iter().find(|a| a.id == id).cloned()
        };
        match action {
            AttachmentAction::Upload {
                mut link,
                on,
                from_id,
            } => {
                let from = link.origin;
                let Some(source) = listed(from, &from_id) else {
                    return Ok(());
                };
                // Recorded first: whatever happens after, the retry recognises the twin.
                link.state = AttachmentLinkState::Pending;
                link.id = store
                    .save_attachment_link(&conn.name, j, e, &link, Utc::now())
                    .await
                    .map_err(already_linked)?;
                let copy = match copies.remove(&(from, from_id.clone())) {
                    Some(c) => c,
                    None => {
                        copy_to_disk(
                            &**conn.side(from),
                            item_on(from, pair),
                            &source,
                            conn.attachments.max_bytes,
                        )
                        .await?
                    }
                };
                if copy.sha256 != link.sha256 {
                    // The listing's hash is not the content's: uploading would record a
                    // wrong identity and copy the file again on every reconcile.
                    return Err(Failure::Permanent(format!(
                        "attachment `{}` ({from_id}) on the {from} side: its content's SHA-256 \
                         is {}, not the {} its listing gives",
                        source.filename, copy.sha256, link.sha256
                    )));
                }
                let uploaded = conn
                    .side(on)
                    .upload_attachment(
                        item_on(on, pair),
                        &Upload {
                            filename: &source.filename,
                            content_type: source.content_type.as_deref(),
                            size: copy.size,
                            path: &copy.path,
                        },
                    )
                    .await?;
                info!(connection = %conn.name, %on, attachment = %uploaded.id, file = %source.filename, bytes = copy.size, "attachment copied");
                link.set_id_on(on, Some(uploaded.id.clone()));
                link.state = AttachmentLinkState::Linked;
                store
                    .save_attachment_link(&conn.name, j, e, &link, Utc::now())
                    .await?;
                done.audit
                    .push(self.attachment_audit(conn, queued, pair, on, &link, None, "uploaded"));
            }
            AttachmentAction::Adopt {
                link_id,
                on,
                attachment_id,
            } => {
                let Some(mut l) = stored(link_id) else {
                    return Ok(());
                };
                debug!(connection = %conn.name, %on, attachment = %attachment_id, "found the twin of a pending attachment");
                l.set_id_on(on, Some(attachment_id));
                l.state = AttachmentLinkState::Linked;
                store
                    .save_attachment_link(&conn.name, j, e, &l, Utc::now())
                    .await
                    .map_err(already_linked)?;
            }
            AttachmentAction::Pair { link } => {
                debug!(connection = %conn.name, file = %link.filename, "paired two copies of one attachment");
                store
                    .save_attachment_link(&conn.name, j, e, &link, Utc::now())
                    .await
                    .map_err(already_linked)?;
            }
            AttachmentAction::Delete {
                link_id,
                on,
                attachment_id,
            } => {
                conn.side(on)
                    .delete_attachment(item_on(on, pair), &attachment_id)
                    .await?;
                store.delete_attachment_link(link_id).await?;
                if let Some(l) = stored(link_id) {
                    info!(connection = %conn.name, %on, attachment = %attachment_id, file = %l.filename, "attachment deleted");
                    done.audit
                        .push(self.attachment_audit(conn, queued, pair, on, &l, None, "deleted"));
                }
            }
            AttachmentAction::Keep {
                link_id,
                deleted_on,
            } => {
                if let Some(mut l) = stored(link_id) {
                    l.state = AttachmentLinkState::Kept;
                    store
                        .save_attachment_link(&conn.name, j, e, &l, Utc::now())
                        .await?;
                    done.notes.push(format!(
                        "attachment `{}` deleted on the {deleted_on} side was kept on the other \
                         (attachment_deletes = \"keep\")",
                        l.filename
                    ));
                }
            }
            AttachmentAction::Forget { link_id } => store.delete_attachment_link(link_id).await?,
            AttachmentAction::Skip { link, reason } => {
                store
                    .save_attachment_link(&conn.name, j, e, &link, Utc::now())
                    .await
                    .map_err(already_linked)?;
                info!(connection = %conn.name, side = %link.origin, file = %link.filename, %reason, "attachment not copied");
                metrics::counter!("tandem_attachments_skipped_total", "connection" => conn.name.clone())
                    .increment(1);
                done.audit.push(self.attachment_audit(
                    conn,
                    queued,
                    pair,
                    link.origin.other(),
                    &link,
                    Some(reason),
                    "skipped",
                ));
            }
        }
        Ok(())
    }

    /// An audit row for a file written to (or, for a skip, not written to) `target`.
    #[allow(clippy::too_many_arguments)]
    fn attachment_audit(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        pair: &Link,
        target: Side,
        l: &AttachmentLink,
        reason: Option<String>,
        what: &str,
    ) -> AuditEntry {
        let identity = if l.sha256.is_empty() {
            format!("{} ({} bytes)", l.filename, l.size)
        } else {
            format!("{} ({} bytes, sha256 {})", l.filename, l.size, l.sha256)
        };
        let (from, to) = match (what, reason) {
            ("deleted", _) => (Some(FieldValue::Text(identity)), String::new()),
            (_, Some(reason)) => (None, format!("{identity}: not copied: {reason}")),
            _ => (None, identity),
        };
        AuditEntry {
            at: Utc::now(),
            connection: conn.name.clone(),
            event_id: Some(queued.id),
            jira_id: pair.jira_id.clone(),
            external_id: pair.external_id.clone(),
            target,
            field: format!("attachment {}", l.filename),
            mapping_key: format!("attachment:{what}"),
            from,
            to: FieldValue::Text(to),
            actor: format!("worker:{}", self.settings.owner),
        }
    }
}

/// What a reconcile did, for the event's outcome.
#[derive(Default)]
struct Done {
    audit: Vec<AuditEntry>,
    notes: Vec<String>,
}

/// The item of the pair on `side`.
fn item_on(side: Side, pair: &Link) -> &str {
    match side {
        Side::Jira => &pair.jira_id,
        Side::External => &pair.external_id,
    }
}

/// An attachment another reconcile linked meanwhile: retried, and the retry plans against
/// the links as they are.
fn already_linked(e: StoreError) -> Failure {
    Failure::Transient {
        message: format!("store: {e}"),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_of_stopped_processes_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // No process has the largest pid.
        let dead = dir.path().join(format!("{COPY_PREFIX}{}-00", u32::MAX));
        let mine = dir
            .path()
            .join(format!("{COPY_PREFIX}{}-00", std::process::id()));
        let other = dir.path().join("unrelated");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        let removed = sweep_stale_copies(dir.path());
        if std::path::Path::new("/proc/self").exists() {
            assert_eq!(removed, 1);
            assert!(!dead.exists());
        }
        assert!(mine.exists() && other.exists());
    }
}
