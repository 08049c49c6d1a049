//! A small `multipart/form-data` reader (RFC 7578) for the sandboxes' upload routes: the
//! parts of a buffered body, each part's content a slice of the body (no copy).
//!
//! The sandboxes hold the files they are sent in memory anyway; what is under test is that
//! the engine streams them. A body that is not well-formed multipart is refused with a
//! message saying why, as the real systems refuse it with a 400.

use axum::body::Bytes;

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, for a file part.
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Bytes,
}

/// The boundary of a `multipart/form-data; boundary=…` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// Where `needle` first occurs in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut at = from;
    while at + needle.len() <= hay.len() {
        let rel = hay[at..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        let pos = at + rel;
        if &hay[pos..pos + needle.len()] == needle {
            return Some(pos);
        }
        at = pos + 1;
    }
    None
}

/// A header parameter (`filename="a b.txt"`), unquoted and unescaped.
fn param(header: &str, name: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    let key = format!("{name}=");
    let mut search = 0;
    while let Some(rel) = lower[search..].find(&key) {
        let at = search + rel;
        // `filename=` must not match inside `xfilename=`.
        let starts = at == 0 || matches!(lower.as_bytes()[at - 1], b';' | b' ' | b'\t');
        let value = &header[at + key.len()..];
        if starts {
            if let Some(rest) = value.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = rest.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => return Some(out),
                        c => out.push(c),
                    }
                }
                return None;
            }
            return Some(value.split(';').next().unwrap_or("").trim().to_string());
        }
        search = at + key.len();
    }
    None
}

/// The parts of `body`, delimited by `boundary`.
pub fn parse(body: &Bytes, boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let mut at = find(body, delim.as_bytes(), 0).ok_or("no multipart boundary in the body")?;
    let mut parts = Vec::new();
    loop {
        at += delim.len();
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err("a multipart boundary is not followed by a line break".into());
        }
        at += 2;
        let head_end =
            find(body, b"\r\n\r\n", at).ok_or("a multipart part has no end of headers")?;
        let head = std::str::from_utf8(&body[at..head_end])
            .map_err(|_| "a multipart part's headers are not UTF-8")?;
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                name = param(v, "name");
                filename = param(v, "filename");
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim().to_string());
            }
        }
        let data_start = head_end + 4;
        let data_end = find(body, next_delim.as_bytes(), data_start)
            .ok_or("a multipart part is not closed by the boundary")?;
        parts.push(Part {
            name: name.ok_or("a multipart part has no name")?,
            filename,
            content_type,
            data: body.slice(data_start..data_end),
        });
        at = data_end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parts_and_refuses_what_is_not_multipart() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"ab c\"").as_deref(),
            Some("ab c")
        );
        assert_eq!(boundary("application/json"), None);
        let body = Bytes::from_static(
            b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"q\\\".txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--X inside\r\n--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--XX--\r\n",
        );
        let parts = parse(&body, "XX").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "file");
        assert_eq!(parts[0].filename.as_deref(), Some("a \"q\".txt"));
        assert_eq!(&parts[0].data[..], b"hello\r\n--X inside");
        assert_eq!(parts[1].filename, None);
        assert!(parse(&Bytes::from_static(b"nothing"), "XX").is_err());
        assert!(parse(&Bytes::from_static(b"--XX\r\nA: b\r\n\r\nunclosed"), "XX").is_err());
    }
}
