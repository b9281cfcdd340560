//! Typed ids: a video's id, a job's, an upload's, a webhook's and an owner's are all UUIDv7s, and
//! a function that takes two of them (`db::jobs::insert(conn, job_id, video_id, …)`) must not
//! compile with them swapped. Each is a newtype over [`Uuid`] that serialises, binds in SQL and
//! appears in the OpenAPI document as the UUID it is.
//!
//! Queries bind an id with [`VideoId::get`] (the `query!` macros check parameters against the
//! column's own type, `uuid`), so the SQL, and `.sqlx/`, stay as they are.

use std::{fmt, str::FromStr};

use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident = $noun:literal;)*) => {$(
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
        pub struct $name(Uuid);

        impl $name {
            /// A new id: UUIDv7, so ids sort by creation time.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID, to bind in a query.
            pub const fn get(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }

        impl TypedId for $name {
            const NOUN: &'static str = $noun;
        }
    )*};
}

/// What the HTTP layer needs to read any of the ids from a path.
pub trait TypedId: FromStr + Copy {
    /// What the id names, for messages: "this video does not exist".
    const NOUN: &'static str;
}

typed_id! {
    /// A video (`videos.id`), also its directory in storage.
    VideoId = "video";
    /// A transcoding job (`jobs.id`): what Redis carries and a worker claims.
    JobId = "job";
    /// A resumable (tus) upload (`uploads.id`).
    UploadId = "upload";
    /// A webhook endpoint (`webhooks.id`).
    WebhookId = "webhook";
    /// An owner of keys, videos and uploads (`owners.id`): whose quota counts.
    OwnerId = "owner";
    /// A caption track an owner added to a video (`captions.id`).
    CaptionId = "caption";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_and_prints_as_its_uuid() {
        let id = VideoId::generate();
        assert_eq!(id.to_string().parse::<VideoId>().unwrap(), id);
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::Value::String(id.get().to_string())
        );
        assert!("not-a-uuid".parse::<JobId>().is_err());
    }
}
