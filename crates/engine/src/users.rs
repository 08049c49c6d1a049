//! The [`UserResolver`]: who a person on one side is on the other.
//!
//! The connection's user map (`[connection.users] map`) is asked first, by the user as the
//! field holds them and then by their e-mail; without a row, and with `match_by_email`, the
//! e-mail itself is the match. Wherever a side can be asked (Jira's user search, see
//! `connector/jira/users.rs`), an account id is turned into its e-mail and an e-mail into
//! the account id (Cloud) or user name (Data Center) a user field holds there; elsewhere the
//! map's value or the e-mail is written as it is.
//!
//! Every lookup is cached for `cache_ttl`, a miss too: a person who is simply not there must
//! not cost a remote call per event. The pure pieces (the map, the cache, the unmatched rule)
//! are in `tandem_core::users`.

use crate::config::UsersConfig;
use crate::connector::{Connector, ConnectorResult, UserQuery, UserRecord};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tandem_core::Side;
use tandem_core::users::{TtlCache, Unmatched, UserMap, is_email, normalize};

/// Matches the people of one connection's two sides.
pub struct UserResolver {
    connection: String,
    map: UserMap,
    match_by_email: bool,
    unmatched: Unmatched,
    jira: Arc<dyn Connector>,
    external: Arc<dyn Connector>,
    cache: Mutex<TtlCache<Option<UserRecord>>>,
}

impl std::fmt::Debug for UserResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserResolver")
            .field("connection", &self.connection)
            .field("map", &self.map.len())
            .field("match_by_email", &self.match_by_email)
            .field("unmatched", &self.unmatched)
            .finish_non_exhaustive()
    }
}

impl UserResolver {
    pub fn new(
        connection: &str,
        config: &UsersConfig,
        jira: Arc<dyn Connector>,
        external: Arc<dyn Connector>,
    ) -> Self {
        UserResolver {
            connection: connection.to_string(),
            map: config.user_map.clone(),
            match_by_email: config.match_by_email,
            unmatched: config.unmatched_user.clone(),
            jira,
            external,
            cache: Mutex::new(TtlCache::new(config.cache_ttl)),
        }
    }

    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// What an unmatched user does (`unmatched_user`).
    pub fn unmatched(&self) -> &Unmatched {
        &self.unmatched
    }

    pub fn map(&self) -> &UserMap {
        &self.map
    }

    /// (cache hits, cache misses) of the lookups so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.lock().map(|c| c.stats()).unwrap_or_default()
    }

    fn side(&self, side: Side) -> &Arc<dyn Connector> {
        match side {
            Side::Jira => &self.jira,
            Side::External => &self.external,
        }
    }

    /// The map's user on the other side for `user` of side `from`, as the map writes it.
    fn mapped(&self, from: Side, user: &str) -> Option<String> {
        match from {
            Side::Jira => self.map.external_for(user),
            Side::External => self.map.jira_for(user),
        }
        .map(str::to_string)
    }

    /// Asks side `side` for the user `query` names, through the cache. `Ok(None)` without a
    /// call where the side cannot be asked.
    pub async fn lookup(
        &self,
        side: Side,
        query: UserQuery<'_>,
    ) -> ConnectorResult<Option<UserRecord>> {
        let connector = self.side(side);
        if !connector.supports_users() {
            return Ok(None);
        }
        let key = match query {
            UserQuery::Email(e) => format!("{side}|email|{}", normalize(e)),
            UserQuery::Id(id) => format!("{side}|id|{}", id.trim()),
        };
        let labels = [
            ("connection", self.connection.clone()),
            ("side", side.to_string()),
        ];
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.get(&key, Instant::now()));
        if let Some(hit) = cached {
            metrics::counter!("tandem_user_cache_hits_total", &labels).increment(1);
            return Ok(hit);
        }
        metrics::counter!("tandem_user_lookups_total", &labels).increment(1);
        let found = connector.find_user(query).await?;
        if let Ok(mut c) = self.cache.lock() {
            c.put(key, found.clone(), Instant::now());
        }
        Ok(found)
    }

    /// The e-mail of `user` as side `side` holds them: the value itself when it is one,
    /// else what the side says about that id.
    async fn email_of(&self, side: Side, user: &str) -> ConnectorResult<Option<String>> {
        if is_email(user) {
            return Ok(Some(normalize(user)));
        }
        Ok(self
            .lookup(side, UserQuery::Id(user))
            .await?
            .and_then(|u| u.email)
            .map(|e| normalize(&e)))
    }

    /// `user` (an e-mail, an id or a login, as the map or an e-mail names them) as a user
    /// field on side `side` holds them: where the side can be asked, an e-mail becomes its
    /// account id or name (`None` when nobody there has it); anything else is taken as it is.
    pub async fn value_on(&self, side: Side, user: &str) -> ConnectorResult<Option<String>> {
        let user = user.trim();
        if user.is_empty() {
            return Ok(None);
        }
        if is_email(user) && self.side(side).supports_users() {
            return Ok(self
                .lookup(side, UserQuery::Email(user))
                .await?
                .map(|u| u.id));
        }
        Ok(Some(user.to_string()))
    }

    /// The value a user field on the other side of `from` should hold for `user`, a user
    /// field's value on `from`; `None` when they have no match there.
    pub async fn to_other(&self, from: Side, user: &str) -> ConnectorResult<Option<String>> {
        let user = user.trim();
        if user.is_empty() {
            return Ok(None);
        }
        let to = from.other();
        // The map by the value itself: no remote call when the map names the id.
        let mut target = self.mapped(from, user);
        let mut email = None;
        if target.is_none() {
            email = self.email_of(from, user).await?;
            target = email.as_deref().and_then(|e| self.mapped(from, e));
        }
        let target = match target {
            Some(t) => t,
            None if self.match_by_email => match email {
                Some(e) => e,
                None => return Ok(None),
            },
            None => return Ok(None),
        };
        self.value_on(to, &target).await
    }

    /// The user a field on the other side of `from` holds for a person of `from` known by
    /// `id` (as a user field there holds them) and, where the system shows it, `email`: the
    /// map by the id, then the map and the e-mail match by the address (no lookup needed
    /// when it is given), then by the id's e-mail. `None` when they have no match.
    pub async fn person_to_other(
        &self,
        from: Side,
        id: Option<&str>,
        email: Option<&str>,
    ) -> ConnectorResult<Option<String>> {
        let id = id.map(str::trim).filter(|s| !s.is_empty());
        if let Some(target) = id.and_then(|id| self.mapped(from, id)) {
            return self.value_on(from.other(), &target).await;
        }
        if let Some(email) = email.filter(|e| is_email(e)) {
            return self.to_other(from, email).await;
        }
        match id {
            Some(id) => self.to_other(from, id).await,
            None => Ok(None),
        }
    }

    /// The `default:<user>` of `unmatched_user` as side `to` holds it (as written when the
    /// side cannot resolve it).
    pub async fn default_on(&self, to: Side, user: &str) -> ConnectorResult<String> {
        Ok(self
            .value_on(to, user)
            .await?
            .unwrap_or_else(|| user.trim().to_string()))
    }

    /// Counts one unmatched user of side `side` (`tandem_user_unmatched_total`).
    pub fn count_unmatched(&self, side: Side) {
        metrics::counter!("tandem_user_unmatched_total", "connection" => self.connection.clone(), "side" => side.to_string()).increment(1);
    }
}

/// One user `tandem check --users` found without a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedUser {
    /// The side the user is on.
    pub side: Side,
    pub user: String,
    /// Where they were seen: a map row (`users.csv:4`) or the fields of recent items.
    pub seen: String,
}

/// How far back `tandem check --users` looks for recent items' users.
pub const RECENT_DAYS: i64 = 30;

/// The users of connection `conn` that do not match, read-only: the map's Jira column entries
/// Jira does not know, and the users in the user fields of each side's items changed in the
/// last [`RECENT_DAYS`] days (their first page) that have no match on the other side.
pub async fn check_users(
    conn: &crate::config::ConnectionConfig,
    http: &reqwest::Client,
) -> anyhow::Result<Vec<UnmatchedUser>> {
    use crate::connector::{self, ConnectorContext};
    use tandem_core::mapping::FieldType;
    let Some(config) = &conn.users else {
        return Ok(Vec::new());
    };
    let make = |side: Side, cfg: connector::SideConfig<'_>| {
        connector::build(
            cfg,
            ConnectorContext::new(side, conn.fields.clone(), http.clone())
                .with_filter(conn.filter.clone()),
        )
    };
    let jira = make(Side::Jira, (&conn.jira).into())?;
    let external = make(Side::External, (&conn.external).into())?;
    for c in [&jira, &external] {
        c.prepare().await?;
    }
    let resolver = UserResolver::new(&conn.name, config, jira.clone(), external.clone());
    let file = config
        .map
        .as_deref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    // The map's Jira users, where Jira can be asked.
    if jira.supports_users() {
        for pair in resolver.map().pairs() {
            let known = if is_email(&pair.jira) {
                resolver.value_on(Side::Jira, &pair.jira).await?.is_some()
            } else {
                resolver
                    .lookup(Side::Jira, UserQuery::Id(&pair.jira))
                    .await?
                    .is_some()
            };
            if !known {
                out.push(UnmatchedUser {
                    side: Side::Jira,
                    user: pair.jira.clone(),
                    seen: format!("{file}:{}, not a Jira user", pair.line),
                });
            }
        }
    }
    // The users of recent items, each side.
    let since = chrono::Utc::now() - chrono::Duration::days(RECENT_DAYS);
    let entries: Vec<_> = conn
        .fields
        .fields
        .iter()
        .filter(|m| m.field_type == FieldType::User)
        .collect();
    for (side, connector) in [(Side::Jira, &jira), (Side::External, &external)] {
        let page = connector.changed_since(since, None).await?;
        let mut seen: std::collections::BTreeMap<String, (String, usize)> = Default::default();
        for item in &page.items {
            for m in &entries {
                let Some(v) = item.fields.get(m.field_on(side)) else {
                    continue;
                };
                let user = tandem_core::to_text(v);
                if user.trim().is_empty() {
                    continue;
                }
                let e = seen
                    .entry(user.trim().to_string())
                    .or_insert((m.field_on(side).to_string(), 0));
                e.1 += 1;
            }
        }
        for (user, (field, count)) in seen {
            if resolver.to_other(side, &user).await?.is_none() {
                out.push(UnmatchedUser {
                    side,
                    user,
                    seen: format!(
                        "{field} of {count} item{} changed in the last {RECENT_DAYS} days, no match on the {} side",
                        if count == 1 { "" } else { "s" },
                        side.other()
                    ),
                });
            }
        }
    }
    Ok(out)
}
