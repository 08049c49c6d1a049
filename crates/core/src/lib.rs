//! Tandem's pure domain: the vocabulary every other part speaks.
//!
//! Nothing in this crate does I/O or needs an async runtime: values, field mappings and their
//! conversions, change events, links with their shadows, the planning step that decides what
//! to write, and the retry schedule are all plain functions over plain data, so they can be
//! tested exhaustively and reused by the server, the CLI and the benchmarks alike.

pub mod attachment;
pub mod comment;
pub mod convert;
pub mod direction;
pub mod event;
pub mod ids;
pub mod kind;
pub mod link;
pub mod mapping;
pub mod plan;
pub mod retry;
pub mod richtext;
pub mod users;
pub mod value;

pub use comment::{Comment, CommentAction, CommentLink, CommentSettings, NewComment, TandemMark};
pub use convert::{map_to_external, map_to_jira};
pub use event::{ChangeEvent, ChangeKind, CommentChange, CommentRef, EventOrigin};
pub use ids::Side;
pub use kind::{ConvertError, FieldType, coerce, from_text, to_text};
pub use link::{Link, Shadow, ShadowEntry};
pub use mapping::{
    ConflictPolicy, Direction, FieldMapping, FieldMappingSpec, Location, Mapping, MappingError,
    MappingErrors, parse_csv, parse_toml, validate,
};
pub use plan::{Decision, Outcome, Plan, PlanInput, plan_create, plan_update};
pub use retry::{FailureClass, RetryPolicy, classify_status, parse_retry_after};
pub use richtext::{Block, Doc, Inline, Marks, RichTextError};
pub use value::FieldValue;
