//! Step 1 of an event whose item has no link yet: find its twin. The pair may already know
//! each other (Jira's link field, or the twin's record of the Jira key, the seed's
//! `sourceIssueId`), or the twin may be one Tandem created whose answer was lost (found by the
//! values its recorded create sent). Found, the pair is linked and the event applied; else
//! the twin is created (`create.rs`). Runs under the connection's lock (see `Engine::handle`).
//!
//! Jira's link field is written here too, the pair's record that people and discovery read.

use super::{ConnectionRuntime, Engine, Failure, Outcome};
use crate::connector::{ConnectorError, Item};
use crate::store::QueuedEvent;
use chrono::Utc;
use std::time::Duration;
use tandem_core::plan::{holds_created, restore_written};
use tandem_core::{Link, Shadow, Side};
use tracing::{debug, info, warn};

/// What an unlinked external item's recorded source names in Jira.
enum Named {
    Nothing,
    /// A Jira issue free to be linked with it, and whether its link field names the item
    /// already.
    Issue {
        id: String,
        field_names_it: bool,
    },
    /// A Jira issue (by key) linked to another item already.
    LinkedElsewhere(String),
}

/// What discovery found for an unlinked item.
enum Discovery {
    /// The twin's id on the other side; `recognised` when it was known by the values of a
    /// create Tandem recorded, not by a reference either item holds; `field_set` when the
    /// Jira issue's link field, as read, names the twin already.
    Twin {
        id: String,
        recognised: bool,
        field_set: bool,
    },
    /// The event is ignored, for this reason.
    Ignore(String),
    /// No twin: one may be created.
    Nothing,
}

impl Engine {
    /// No link yet: find the twin through Jira's link field, else create it.
    pub(super) async fn link_or_create(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        // The source item in full: creation needs every mapped field, and Jira items carry
        // their project, type and link field, which decide scope and discovery.
        let item = conn.side(event.source).fetch(&event.item_id).await?;
        if event.source == Side::Jira
            && let Some(reason) = conn.scope.excludes(&item)
        {
            return self.ignore(queued, &reason).await;
        }
        match self.discover(conn, queued, &item).await? {
            Discovery::Twin {
                id,
                recognised,
                field_set,
            } => {
                self.link_discovered(conn, queued, &item, id, (recognised, field_set))
                    .await
            }
            Discovery::Ignore(reason) => self.ignore(queued, &reason).await,
            Discovery::Nothing => self.create_twin(conn, queued, &item).await,
        }
    }

    /// Looks for the twin of the unlinked `item` (the event's source item, read in full).
    async fn discover(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        item: &Item,
    ) -> Result<Discovery, Failure> {
        let event = &queued.event;
        // Discovery: the pair may already know each other. `field_set`: Jira's link field
        // names the twin already (read with the issue), so it need not be written.
        let discovered = match event.source {
            Side::Jira => match item.link.clone().filter(|l| !l.trim().is_empty()) {
                Some(l) => Some((l, true)),
                None => self
                    .twin_made_earlier(conn, queued, item)
                    .await?
                    .map(|id| (id, false)),
            },
            Side::External => match conn.jira.find_by_link(&event.item_id).await? {
                Some(jira_item) => Some((jira_item.id, true)),
                None => match self.jira_named_by(conn, item).await? {
                    Named::Issue { id, field_names_it } => Some((id, field_names_it)),
                    Named::Nothing => None,
                    Named::LinkedElsewhere(key) => {
                        return Ok(Discovery::Ignore(format!(
                            "the item names Jira issue {key}, which is linked to another item \
                             (a second twin left by an earlier attempt?); not creating a third"
                        )));
                    }
                },
            },
        };
        if let Some((id, field_set)) = discovered {
            return Ok(Discovery::Twin {
                id,
                recognised: false,
                field_set,
            });
        }
        // A create Tandem made whose answer was lost or unreadable: its twin comes back as an
        // unknown item holding the values the create sent. It is that twin, not a new item.
        Ok(
            match self.recognised_twin(conn, event.source, item).await? {
                Some(id) => Discovery::Twin {
                    id,
                    recognised: true,
                    field_set: false,
                },
                None => Discovery::Nothing,
            },
        )
    }

    /// Links `item` with the twin discovery found (`other_id`, on the other side), then
    /// has the event applied to the new link under the link's ordering key.
    ///
    /// Jira's link field is written *before* the link is stored, when the issue was read
    /// without it (`field_set` false): once the link is stored, the pair's later events
    /// (this one's retry too) find it and, their snapshots being echoes, never read the
    /// issue, so nothing would write the field. Written first, a failure or a crash leaves
    /// no link, and the retry discovers the pair again (now through the field).
    async fn link_discovered(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        item: &Item,
        other_id: String,
        (recognised, field_set): (bool, bool),
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        let (jira_id, jira_key, external_id) = match event.source {
            Side::Jira => (item.id.clone(), item.key.clone(), other_id),
            Side::External => (other_id, None, item.id.clone()),
        };
        if !field_set {
            // Not over a pair linked otherwise (the lock is held: nobody links meanwhile).
            let other = event.source.other();
            if let Some(existing) = self
                .store
                .link_by_item(
                    &conn.name,
                    other,
                    if other == Side::Jira {
                        &jira_id
                    } else {
                        &external_id
                    },
                )
                .await?
                .filter(|l| l.jira_id != jira_id || l.external_id != external_id)
            {
                let reason = format!(
                    "found twin {jira_id} / {external_id}, but {} / {} are already linked",
                    existing.jira_id, existing.external_id
                );
                return self.ignore(queued, &reason).await;
            }
            self.ensure_link_field(conn, &jira_id, &external_id).await?;
        }
        // If Tandem created one of the two (its answer lost, or the process killed before
        // the link was stored), the values it created it with are the pair's last synced
        // state: a later edit on the twin then reads as an edit, not as a disagreement
        // for the conflict policy to settle by the items' `updated` times (which
        // unrelated edits and Tandem's own link-field write move).
        let shadow = self.recorded_creates(conn, &jira_id, &external_id).await?;
        let link = Link {
            connection: conn.name.clone(),
            jira_id,
            jira_key,
            external_id,
            shadow,
            pending: Default::default(),
            version: 0,
        };
        let link = match self.store.insert_link(&link).await? {
            Ok(()) => link,
            Err(existing)
                if existing.jira_id == link.jira_id && existing.external_id == link.external_id =>
            {
                existing
            }
            Err(existing) => {
                let reason = format!(
                    "found twin {} / {}, but {} / {} are already linked",
                    link.jira_id, link.external_id, existing.jira_id, existing.external_id
                );
                return self.ignore(queued, &reason).await;
            }
        };
        info!(connection = %conn.name, jira = %link.jira_id, external = %link.external_id, recognised, "linked existing twins");
        // The event was queued under its item's own key (there was no link). The pair's
        // later events are queued under the link's key and may run on another worker right
        // now: planning and writing here would race them (an older value written over a
        // newer one). It goes under the link's key, to run in order with them.
        if self.moved_to_link_key(queued, &link).await? {
            return Ok(Outcome::Requeued);
        }
        self.apply_to_link(conn, queued, link, Some(item)).await
    }

    /// The shadow a pair found by discovery starts with: the values of a create Tandem
    /// recorded for either item (see `Store::record_create`), else nothing.
    async fn recorded_creates(
        &self,
        conn: &ConnectionRuntime,
        jira_id: &str,
        external_id: &str,
    ) -> Result<Shadow, Failure> {
        let mut shadow = Shadow::default();
        for (side, id) in [(Side::Jira, jira_id), (Side::External, external_id)] {
            if let Some(recorded) = self.store.recorded_create(&conn.name, side, id).await? {
                debug!(connection = %conn.name, side = %side, item = %id, "linked pair starts from a recorded create");
                shadow.0.extend(recorded.0);
            }
        }
        Ok(shadow)
    }

    /// An external twin that an earlier attempt at this event created, found by the Jira key
    /// it records (the seed's `sourceIssueId`). Creates are not idempotent: an attempt whose
    /// answer was lost, or whose worker was killed before the link was stored, has made a twin
    /// already. Only looked for when there may have been such an attempt (a failed one, or an
    /// event older than a lease, whose first worker may have died), and only among items
    /// changed since the event arrived, so the common path costs no call.
    async fn twin_made_earlier(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        item: &Item,
    ) -> Result<Option<String>, Failure> {
        let lease = chrono::Duration::from_std(self.settings.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        // A recorded create is the surest sign: any event of the item may follow it (the
        // item's next edit, not only a retry of the event that created).
        let recorded = self
            .store
            .recorded_create(&conn.name, Side::Jira, &item.id)
            .await?;
        let maybe_attempted =
            queued.attempts > 0 || Utc::now() - queued.received_at > lease || recorded.is_some();
        if !maybe_attempted || !conn.create.allows(Side::External) {
            return Ok(None);
        }
        let key = item.key.clone().unwrap_or_else(|| item.id.clone());
        let since = queued.received_at - chrono::Duration::minutes(1);
        let mut page_token: Option<String> = None;
        for _ in 0..100 {
            let page = match conn
                .external
                .changed_since(since, page_token.as_deref())
                .await
            {
                Ok(page) => page,
                // No listing configured (or one that cannot be read): nothing to look in.
                Err(ConnectorError::Permanent { message, .. }) => {
                    debug!(connection = %conn.name, error = %message, "cannot list changed items to look for an earlier twin");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            // The twin records the Jira key (the seed's `sourceIssueId`), or, where the system
            // keeps no such reference, holds exactly the values the create sent.
            if let Some(found) = page.items.iter().find(|i| {
                i.link.as_deref().map(str::trim) == Some(key.as_str())
                    || recorded.as_ref().is_some_and(|r| {
                        holds_created(
                            &restore_written(
                                &i.fields,
                                Side::External,
                                r,
                                &Shadow::default(),
                                &conn.mapping,
                            ),
                            Side::External,
                            r,
                            &conn.mapping,
                        )
                    })
            }) {
                info!(connection = %conn.name, jira = %key, external = %found.id, "found the twin an earlier attempt created");
                return Ok(Some(found.id.clone()));
            }
            match page.next {
                Some(next) if !page.items.is_empty() => page_token = Some(next),
                _ => break,
            }
        }
        Ok(None)
    }

    /// The Jira issue an unlinked external item names as its source (the seed's
    /// `sourceIssueId`): after a create whose answer was lost, the twin's own webhook arrives
    /// before the link is stored, and without this it would get a Jira twin of its own.
    async fn jira_named_by(&self, conn: &ConnectionRuntime, item: &Item) -> Result<Named, Failure> {
        let Some(key) = item
            .link
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty() && *k != item.id)
        else {
            return Ok(Named::Nothing);
        };
        let issue = match conn.jira.fetch(key).await {
            Ok(issue) => issue,
            // No such issue (deleted, or not a key at all): nothing to link to.
            Err(ConnectorError::Permanent { .. }) => return Ok(Named::Nothing),
            Err(e) => return Err(e.into()),
        };
        if conn.scope.excludes(&issue).is_some() {
            return Ok(Named::Nothing);
        }
        let linked = self
            .store
            .link_by_item(&conn.name, Side::Jira, &issue.id)
            .await?;
        let recorded = issue.link.as_deref().map(str::trim).unwrap_or("");
        match linked {
            Some(l) if l.external_id != item.id => Ok(Named::LinkedElsewhere(key.to_string())),
            _ if !recorded.is_empty() && recorded != item.id => {
                Ok(Named::LinkedElsewhere(key.to_string()))
            }
            _ => Ok(Named::Issue {
                id: issue.id,
                field_names_it: recorded == item.id,
            }),
        }
    }

    /// The item of the other side that an unlinked `item` (read from `side`) is the twin of:
    /// the oldest recorded create into `side` whose values it holds. Such a create's answer
    /// was lost, unreadable, or its process was killed before the link was stored, so the
    /// twin arrives (webhook or poll) as an unknown item; twinning it again would make a
    /// second copy of the first item, and the copy's copy would come back in turn.
    ///
    /// While a create into `side` took effect unreadably and its twin has not been
    /// recognised yet, an unknown item there is held (a transient failure naming the
    /// create): it may be that twin with values changed since, and twinning it would copy
    /// the first item twice. It goes on once the twin is recognised or an operator resets
    /// the side (`tandem creates reset`).
    async fn recognised_twin(
        &self,
        conn: &ConnectionRuntime,
        side: Side,
        item: &Item,
    ) -> Result<Option<String>, Failure> {
        let records = self.store.recorded_creates_into(&conn.name, side).await?;
        if let Some(r) = records.iter().find(|r| {
            // A create the script shaped is recognised by the values it sent.
            let values = restore_written(
                &item.fields,
                side,
                &r.values,
                &Shadow::default(),
                &conn.mapping,
            );
            holds_created(&values, side, &r.values, &conn.mapping)
        }) {
            info!(connection = %conn.name, %side, item = %item.id, twin_of = %r.item_id, "recognised the twin of an earlier create");
            return Ok(Some(r.item_id.clone()));
        }
        if let Some(r) = records.iter().find(|r| r.unreadable.is_some()) {
            return Err(Failure::Transient {
                message: format!(
                    "not twinned yet: this {side} item may be the twin that Tandem created \
                     for {} item {} at {}, whose answer could not be read ({}); it waits \
                     until that twin is recognised, or `tandem creates reset --connection {}` \
                     lets it go",
                    r.source,
                    r.item_id,
                    r.recorded_at.to_rfc3339(),
                    r.unreadable.as_deref().unwrap_or_default(),
                    conn.name
                ),
                retry_after: None,
            });
        }
        Ok(None)
    }

    /// Writes the external id into the Jira issue's link field, before the pair's link is
    /// stored (people, other tools and discovery read the field to find the twin). A
    /// transient failure is tried again a few times here, then fails the event: the link
    /// is not stored yet, so its retry discovers the pair again and writes the field. A
    /// permanent one (the field cannot be written at all) is logged and the pair is linked
    /// without it; `fill_link_field` tries again whenever the issue is read.
    pub(super) async fn ensure_link_field(
        &self,
        conn: &ConnectionRuntime,
        jira_id: &str,
        external_id: &str,
    ) -> Result<(), Failure> {
        let mut delay = Duration::from_millis(100);
        for attempt in 1.. {
            match conn.jira.set_link(jira_id, external_id).await {
                Ok(()) => return Ok(()),
                Err(e @ ConnectorError::Permanent { .. }) => {
                    warn!(connection = %conn.name, jira = %jira_id, error = %e, "could not write the link field in Jira");
                    return Ok(());
                }
                Err(e) if attempt == 3 => return Err(e.into()),
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        Ok(())
    }

    /// Writes the external id into the linked Jira issue's link field when the issue was
    /// read without it. A pair linked by discovery (a create whose answer was lost, found
    /// through the twin's `sourceIssueId`, from either side's event) or a link-field write
    /// that failed after a create would otherwise leave the field empty for good: nothing
    /// else writes it. Doing it whenever the issue is read anyway costs no extra read, and a
    /// failure is transient like any other, so the event is retried until it is written.
    pub(super) async fn fill_link_field(
        &self,
        conn: &ConnectionRuntime,
        link: &Link,
        jira_item: &Item,
    ) -> Result<(), Failure> {
        if jira_item
            .link
            .as_deref()
            .is_some_and(|l| !l.trim().is_empty())
        {
            return Ok(());
        }
        conn.jira.set_link(&link.jira_id, &link.external_id).await?;
        info!(connection = %conn.name, jira = %link.jira_id, external = %link.external_id, "wrote the link field in Jira");
        Ok(())
    }
}
