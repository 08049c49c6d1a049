//! Moving files without holding them: the download side ([`Download`], a source of chunks
//! read off the wire as they come) and the upload side ([`MultipartFile`], a
//! `multipart/form-data` body streamed from a file on disk with an exact length, and
//! [`Base64File`], a JSON body carrying the file as a base64 string, encoded on the fly).
//!
//! A file is never whole in memory: the worker copies a download to a temporary file in
//! chunks (hashing as it goes), and the upload reads that file back a buffer at a time. The
//! multipart body is built by hand rather than by reqwest's `multipart` feature so that its
//! length is known up front (servers such as Jira refuse chunked uploads of unknown length
//! less gracefully) and no crate is added for it.

use super::{ConnectorError, ConnectorResult};
use async_trait::async_trait;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// How much of a file is read from disk at a time for an upload.
const CHUNK: usize = 64 * 1024;

/// How long one transfer of `size` bytes may take: the usual half minute plus what the file
/// needs at 256 KiB/s. The client's per-call timeout suits JSON calls, not a large file on a
/// slow link; a stalled transfer still ends.
pub fn transfer_timeout(size: u64) -> std::time::Duration {
    std::time::Duration::from_secs(30 + size / (256 * 1024))
}

/// A file's content as it arrives, a chunk at a time.
#[async_trait]
pub trait ByteSource: Send {
    /// The next chunk; `None` at the end.
    async fn next_chunk(&mut self) -> ConnectorResult<Option<Bytes>>;
}

/// A download in progress.
pub type Download = Box<dyn ByteSource>;

/// A download read from an HTTP answer's body.
pub struct ResponseBody {
    resp: reqwest::Response,
    what: String,
}

impl ResponseBody {
    pub fn boxed(resp: reqwest::Response, what: String) -> Download {
        Box::new(ResponseBody { resp, what })
    }
}

#[async_trait]
impl ByteSource for ResponseBody {
    async fn next_chunk(&mut self) -> ConnectorResult<Option<Bytes>> {
        self.resp.chunk().await.map_err(|e| {
            // The connection broke mid-file: worth another try.
            ConnectorError::Transient {
                message: format!("{}: download broke off: {}", self.what, e.without_url()),
                status: None,
                retry_after: None,
            }
        })
    }
}

/// A file to upload: a local file (the worker's temporary copy) and what to call it.
#[derive(Debug, Clone)]
pub struct Upload<'a> {
    pub filename: &'a str,
    pub content_type: Option<&'a str>,
    pub size: u64,
    pub path: &'a Path,
}

/// A `multipart/form-data` body with one file part, streamed from disk.
pub struct MultipartFile {
    head: Option<Bytes>,
    file: Option<tokio::fs::File>,
    tail: Option<Bytes>,
    buf: Vec<u8>,
    remaining: u64,
    total: u64,
}

/// A multipart boundary no file content can be mistaken for (random, and checked against
/// nothing: RFC 2046 only asks that it be unlikely, which 128 random bits are).
pub fn boundary() -> String {
    format!("tandem-{:032x}", rand::random::<u128>())
}

/// A file name as a quoted-string parameter: quotes and backslashes escaped, line breaks
/// (which would end the header) replaced.
fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl MultipartFile {
    /// Opens `upload.path` as the part `field` of a body delimited by `boundary`. Answers the
    /// body and its `Content-Type` header value.
    pub async fn open(
        upload: &Upload<'_>,
        field: &str,
        boundary: &str,
    ) -> ConnectorResult<(MultipartFile, String)> {
        let file =
            tokio::fs::File::open(upload.path)
                .await
                .map_err(|e| ConnectorError::Transient {
                    message: format!("could not read the copy of `{}`: {e}", upload.filename),
                    status: None,
                    retry_after: None,
                })?;
        let content_type = upload
            .content_type
            .filter(|t| !t.contains(['\r', '\n']))
            .unwrap_or("application/octet-stream");
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename={}\r\n\
             Content-Type: {content_type}\r\n\r\n",
            quoted(upload.filename)
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let total = head.len() as u64 + upload.size + tail.len() as u64;
        Ok((
            MultipartFile {
                head: Some(Bytes::from(head)),
                file: Some(file),
                tail: Some(Bytes::from(tail)),
                buf: vec![0; CHUNK],
                remaining: upload.size,
                total,
            },
            format!("multipart/form-data; boundary={boundary}"),
        ))
    }

    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Body for MultipartFile {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if let Some(file) = this.file.as_mut() {
            let want = this.buf.len().min(this.remaining.max(1) as usize);
            let mut rb = ReadBuf::new(&mut this.buf[..want]);
            match Pin::new(file).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n > 0 && this.remaining > 0 {
                        let n = n.min(this.remaining as usize);
                        this.remaining -= n as u64;
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(
                            &this.buf[..n],
                        )))));
                    }
                    this.file = None;
                    if this.remaining > 0 {
                        // The announced length would be a lie: fail the upload rather than
                        // send a short file.
                        return Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the file to upload is shorter than its size",
                        ))));
                    }
                }
            }
        }
        match this.tail.take() {
            Some(tail) => Poll::Ready(Some(Ok(Frame::data(tail)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.file.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total)
    }
}

/// How much of a file is read per frame of a base64 body: a multiple of 3, so that each
/// frame's encoding stands alone (no padding until the end).
const B64_CHUNK: usize = 48 * 1024;

/// A JSON body whose one string value is a file's content in base64, streamed from disk:
/// `head` (the JSON up to and including the string's opening quote), the file encoded a
/// buffer at a time, then `tail` (the closing quote and the rest). Its exact length is known
/// before the first byte is read, so it goes with a `Content-Length` like a multipart body.
pub struct Base64File {
    head: Option<Bytes>,
    file: Option<tokio::fs::File>,
    tail: Option<Bytes>,
    buf: Vec<u8>,
    /// Bytes read but not encoded yet (fewer than 3 between reads).
    carry: Vec<u8>,
    remaining: u64,
    total: u64,
}

/// The length of `n` bytes in padded base64.
pub fn base64_len(n: u64) -> u64 {
    n.div_ceil(3) * 4
}

impl Base64File {
    /// Opens `upload.path` to stream it between `head` and `tail`.
    pub async fn open(upload: &Upload<'_>, head: String, tail: String) -> ConnectorResult<Self> {
        let file =
            tokio::fs::File::open(upload.path)
                .await
                .map_err(|e| ConnectorError::Transient {
                    message: format!("could not read the copy of `{}`: {e}", upload.filename),
                    status: None,
                    retry_after: None,
                })?;
        let total = head.len() as u64 + base64_len(upload.size) + tail.len() as u64;
        Ok(Base64File {
            head: Some(Bytes::from(head)),
            file: Some(file),
            tail: Some(Bytes::from(tail)),
            buf: vec![0; B64_CHUNK],
            carry: Vec::with_capacity(3),
            remaining: upload.size,
            total,
        })
    }

    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Body for Base64File {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        while let Some(file) = this.file.as_mut() {
            let want = this.buf.len().min(this.remaining.max(1) as usize);
            let mut rb = ReadBuf::new(&mut this.buf[..want]);
            match Pin::new(file).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len().min(this.remaining as usize);
                    if n > 0 {
                        this.remaining -= n as u64;
                        this.carry.extend_from_slice(&this.buf[..n]);
                        // Encode whole groups of 3 now; a last group waits for the end.
                        let whole = if this.remaining == 0 {
                            this.carry.len()
                        } else {
                            this.carry.len() / 3 * 3
                        };
                        if whole == 0 {
                            continue;
                        }
                        let out = b64.encode(&this.carry[..whole]);
                        this.carry.drain(..whole);
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                    this.file = None;
                    if this.remaining > 0 {
                        return Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the file to upload is shorter than its size",
                        ))));
                    }
                    if !this.carry.is_empty() {
                        let out = b64.encode(&this.carry);
                        this.carry.clear();
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
            }
        }
        match this.tail.take() {
            Some(tail) => Poll::Ready(Some(Ok(Frame::data(tail)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.file.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body reads as a well-formed multipart document holding the file, and its length
    /// is the announced one.
    #[tokio::test]
    async fn multipart_body_streams_the_file_with_an_exact_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let up = Upload {
            filename: "a \"b\".bin",
            content_type: None,
            size: content.len() as u64,
            path: &path,
        };
        let (mut body, ct) = MultipartFile::open(&up, "file", "XyZ").await.unwrap();
        assert_eq!(ct, "multipart/form-data; boundary=XyZ");
        let total = body.len();
        let mut out = Vec::new();
        let mut frames = 0;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= CHUNK.max(200));
            out.extend_from_slice(&data);
            frames += 1;
        }
        assert!(frames > 3, "read in chunks");
        assert_eq!(out.len() as u64, total);
        let head = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".bin\"\r\nContent-Type: application/octet-stream\r\n\r\n";
        assert!(out.starts_with(head));
        assert!(out.ends_with(b"\r\n--XyZ--\r\n"));
        assert_eq!(&out[head.len()..head.len() + content.len()], &content[..]);
    }

    /// The base64 body decodes to the file whatever its length's remainder mod 3, its
    /// frames stay small, and its length is the announced one.
    #[tokio::test]
    async fn base64_body_streams_the_file_with_an_exact_length() {
        use base64::Engine;
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 1, 2, 3, 100_000, 100_001, 3 * B64_CHUNK + 2] {
            let path = dir.path().join(format!("f{len}"));
            let content: Vec<u8> = (0..len as u32).map(|i| (i % 253) as u8).collect();
            std::fs::write(&path, &content).unwrap();
            let up = Upload {
                filename: "x",
                content_type: None,
                size: len as u64,
                path: &path,
            };
            let mut body = Base64File::open(&up, "{\"d\":\"".into(), "\"}".into())
                .await
                .unwrap();
            let total = body.len();
            let mut out = Vec::new();
            while let Some(frame) =
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            {
                let data = frame.unwrap().into_data().unwrap();
                assert!(data.len() <= base64_len(B64_CHUNK as u64) as usize);
                out.extend_from_slice(&data);
            }
            assert_eq!(out.len() as u64, total, "length of {len}");
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(v["d"].as_str().unwrap())
                .unwrap();
            assert_eq!(decoded, content, "content of {len}");
        }
    }
}
