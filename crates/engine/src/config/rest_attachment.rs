//! `[connection.external.attachment]`: the attachment calls of a `format = "custom"` REST
//! system — how its files are listed (a path and JSON Pointers into each listed file), how
//! one is uploaded (`multipart/form-data`, or a JSON body carrying the content in base64),
//! downloaded and deleted.
//!
//! Like the comment operations, the table is all or nothing for listing and uploading: a
//! system Tandem can list but not write (or the reverse) has no attachments.

use super::rest::{HttpMethod, check_json_pointer};
use serde::Deserialize;

/// `[connection.external.attachment]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestAttachment {
    /// `[connection.external.attachment.list]`: the files of item `{id}`. Required.
    pub list: AttachmentList,
    /// `[connection.external.attachment.upload]`: adds a file to item `{id}`. Required.
    pub upload: AttachmentUpload,
    /// `[connection.external.attachment.download]`: where a file's bytes are when the
    /// listing gives no URL, and which other origins get the connection's credentials.
    #[serde(default)]
    pub download: Option<AttachmentDownload>,
    /// `[connection.external.attachment.delete]`: removes file `{attachment_id}` (404 counts
    /// as deleted). Without it a deletion to carry here fails as a permanent error: set the
    /// connection's `attachment_deletes = "keep"` for a system that cannot delete files.
    #[serde(default)]
    pub delete: Option<AttachmentDelete>,
}

fn get() -> HttpMethod {
    HttpMethod::Get
}
fn post() -> HttpMethod {
    HttpMethod::Post
}
fn delete() -> HttpMethod {
    HttpMethod::Delete
}
fn ptr(p: &str) -> String {
    p.to_string()
}

/// The listing call and where each listed file's parts are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentList {
    /// Default `GET`.
    #[serde(default = "get")]
    pub method: HttpMethod,
    /// Path after `base_url`, with `{id}` (the item id, URL-encoded).
    pub path: String,
    /// The array of files in the answer. Default: the whole answer.
    #[serde(default)]
    pub items_pointer: String,
    /// Each file's id. Default `/id`.
    #[serde(default = "default_id")]
    pub id_pointer: String,
    /// Each file's name. Default `/filename`.
    #[serde(default = "default_filename")]
    pub filename_pointer: String,
    /// Each file's size in bytes (a number, or digits in a string). Default `/size`.
    #[serde(default = "default_size")]
    pub size_pointer: String,
    /// The SHA-256 of the content (hex, optionally `sha256:`-prefixed). Without it Tandem
    /// hashes the downloaded bytes of each file it has not linked yet.
    #[serde(default)]
    pub sha256_pointer: Option<String>,
    /// The content type.
    #[serde(default)]
    pub content_type_pointer: Option<String>,
    /// Where the file is downloaded from: an absolute URL or a path after `base_url`.
    /// Without it (or where a file has none) `download.path` is used.
    #[serde(default)]
    pub url_pointer: Option<String>,
}

fn default_id() -> String {
    ptr("/id")
}
fn default_filename() -> String {
    ptr("/filename")
}
fn default_size() -> String {
    ptr("/size")
}

/// How an upload's body carries the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentEncoding {
    /// `multipart/form-data` with one file part named `field`.
    Multipart,
    /// A JSON body (`body` template) with the content as one base64 string.
    Base64,
}

/// The upload call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentUpload {
    /// Default `POST`.
    #[serde(default = "post")]
    pub method: HttpMethod,
    /// Path after `base_url`, with `{id}`.
    pub path: String,
    /// `multipart` or `base64`. Required.
    pub encoding: AttachmentEncoding,
    /// Multipart: the file part's name. Default `file`.
    #[serde(default)]
    pub field: Option<String>,
    /// Base64: the JSON body template. `{{content}}` (exactly once) becomes the base64
    /// string; `{{filename}}`, `{{content_type}}`, `{{size}}` and `{{id}}` may appear.
    #[serde(default)]
    pub body: Option<String>,
    /// Where the new file is in the answer, read with the listing's pointers. Default: the
    /// whole answer.
    #[serde(default)]
    pub attachment_pointer: String,
}

/// Downloads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentDownload {
    /// Path after `base_url` with `{attachment_id}` (and optionally `{id}`), for files whose
    /// listing gives no URL.
    #[serde(default)]
    pub path: Option<String>,
    /// Origins (`https://files.example.com`) besides `base_url`'s that get the connection's
    /// credentials when a listed URL points there. Default: none — a URL elsewhere (a
    /// pre-signed link to a file store) is fetched without credentials.
    #[serde(default)]
    pub credentials_for: Vec<String>,
}

/// The delete call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentDelete {
    /// Default `DELETE`.
    #[serde(default = "delete")]
    pub method: HttpMethod,
    /// Path after `base_url` with `{attachment_id}` (and optionally `{id}`).
    pub path: String,
}

impl RestAttachment {
    /// What serde cannot check, each issue at its key under `at`
    /// (`connection[0].external.attachment`).
    pub(super) fn check(&self, at: &str, issue: &mut impl FnMut(&str, String)) {
        let path = |k: &str, p: &str, needs: &[&str], issue: &mut dyn FnMut(&str, String)| {
            if !p.starts_with('/') {
                issue(
                    &format!("{at}.{k}.path"),
                    format!("`{p}` must start with `/`"),
                );
            }
            for n in needs {
                if !p.contains(n) {
                    issue(&format!("{at}.{k}.path"), format!("must contain `{n}`"));
                }
            }
        };
        path("list", &self.list.path, &["{id}"], issue);
        path("upload", &self.upload.path, &["{id}"], issue);
        if let Some(d) = &self.delete {
            path("delete", &d.path, &["{attachment_id}"], issue);
        }
        let l = &self.list;
        for (k, p) in [
            ("items_pointer", Some(&l.items_pointer)),
            ("id_pointer", Some(&l.id_pointer)),
            ("filename_pointer", Some(&l.filename_pointer)),
            ("size_pointer", Some(&l.size_pointer)),
            ("sha256_pointer", l.sha256_pointer.as_ref()),
            ("content_type_pointer", l.content_type_pointer.as_ref()),
            ("url_pointer", l.url_pointer.as_ref()),
        ] {
            if let Some(p) = p
                && let Err(msg) = check_json_pointer(p)
            {
                issue(&format!("{at}.list.{k}"), msg);
            }
        }
        if let Err(msg) = check_json_pointer(&self.upload.attachment_pointer) {
            issue(&format!("{at}.upload.attachment_pointer"), msg);
        }
        let download_path = self.download.as_ref().and_then(|d| d.path.as_deref());
        match download_path {
            Some(p) => path("download", p, &["{attachment_id}"], issue),
            None if l.url_pointer.is_none() => issue(
                &format!("{at}.download.path"),
                "the files need a download: set `list.url_pointer` (where a listed file's URL \
                 is) or `download.path` (e.g. \"/files/{attachment_id}/content\")"
                    .into(),
            ),
            None => {}
        }
        for (i, o) in self
            .download
            .iter()
            .flat_map(|d| d.credentials_for.iter())
            .enumerate()
        {
            if let Err(msg) = origin(o) {
                issue(&format!("{at}.download.credentials_for[{i}]"), msg);
            }
        }
        let u = &self.upload;
        let up = format!("{at}.upload");
        match u.encoding {
            AttachmentEncoding::Multipart => {
                if u.body.is_some() {
                    issue(
                        &format!("{up}.body"),
                        "only used with encoding = \"base64\"".into(),
                    );
                }
                if let Some(f) = &u.field
                    && (f.is_empty() || f.contains(['"', '\r', '\n', '\\']))
                {
                    issue(
                        &format!("{up}.field"),
                        format!("`{f}` is not a usable form field name"),
                    );
                }
            }
            AttachmentEncoding::Base64 => {
                if u.field.is_some() {
                    issue(
                        &format!("{up}.field"),
                        "only used with encoding = \"multipart\"".into(),
                    );
                }
                match &u.body {
                    None => issue(
                        &format!("{up}.body"),
                        "encoding = \"base64\" needs a body template containing `{{content}}`, \
                         e.g. '{\"file\": {\"name\": {{filename}}, \"data\": {{content}}}}'"
                            .into(),
                    ),
                    Some(b) if b.matches("{{content}}").count() != 1 => issue(
                        &format!("{up}.body"),
                        "the body template must contain `{{content}}` exactly once".into(),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
}

/// `https://host[:port]` as an origin to compare URLs with: scheme, host and port.
pub fn origin(text: &str) -> Result<String, String> {
    let url =
        reqwest::Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` must be http or https"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!(
            "`{text}` must be an origin only (scheme, host and port, no path)"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(text: &str) -> Vec<String> {
        let cfg: RestAttachment = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut out = Vec::new();
        cfg.check("a", &mut |k: &str, _m: String| out.push(k.to_string()));
        out
    }

    const LIST: &str = "[list]\npath = \"/t/{id}/files\"\nurl_pointer = \"/href\"\n";

    #[test]
    fn the_table_is_checked_key_by_key() {
        let multipart = "[upload]\npath = \"/t/{id}/files\"\nencoding = \"multipart\"\n";
        assert_eq!(issues(&format!("{LIST}{multipart}")), Vec::<String>::new());
        let b64 = "[upload]\npath = \"/t/{id}/files\"\nencoding = \"base64\"\n\
                   body = '{\"n\": {{filename}}, \"d\": {{content}}}'\n";
        assert_eq!(issues(&format!("{LIST}{b64}")), Vec::<String>::new());
        let no_body = "[upload]\npath = \"/t/{id}/files\"\nencoding = \"base64\"\n";
        assert_eq!(issues(&format!("{LIST}{no_body}")), vec!["a.upload.body"]);
        let twice = b64.replace("{{filename}}", "{{content}}");
        assert_eq!(issues(&format!("{LIST}{twice}")), vec!["a.upload.body"]);
        // No URL in the listing and no download path: nowhere to read a file.
        let list = "[list]\npath = \"/t/{id}/files\"\n";
        assert_eq!(
            issues(&format!("{list}{multipart}")),
            vec!["a.download.path"]
        );
        let dl = "[download]\npath = \"/files/{attachment_id}\"\n\
                  credentials_for = [\"https://cdn.example.com\", \"https://x/y\"]\n";
        assert_eq!(
            issues(&format!("{list}{multipart}{dl}")),
            vec!["a.download.credentials_for[1]"]
        );
        let del = "[delete]\npath = \"/files\"\n";
        assert_eq!(
            issues(&format!("{LIST}{multipart}{del}")),
            vec!["a.delete.path"]
        );
        let bad_ptr = LIST.replace("/href", "href");
        assert_eq!(
            issues(&format!("{bad_ptr}{multipart}")),
            vec!["a.list.url_pointer"]
        );
        assert!(toml::from_str::<RestAttachment>(&format!("{LIST}{multipart}oops = 1\n")).is_err());
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin("https://cdn.example.com").unwrap(),
            "https://cdn.example.com"
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(origin("ftp://x").is_err());
        assert!(origin("https://x/files").is_err());
    }
}
