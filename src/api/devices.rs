//! The push device registry: the app registers each device's FCM token for its user; a PUSH
//! to that `userId` goes to all of them. Tokens FCM reports dead are removed automatically.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::inbox::check_user;
use crate::AppState;
use crate::clock::format_ms;
use crate::store::DeviceRow;
use crate::web::RawBody;
use crate::web::{ApiError, ApiResult, ErrorBody};

/// Longest accepted FCM registration token.
pub const TOKEN_MAX: usize = 1024;

/// A device to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    /// The FCM registration token (≤ 1024 characters).
    #[schema(example = "fMEP0vJqS0Kx…:APA91bH…")]
    pub token: String,
    /// `android`, `ios` or `web`.
    #[schema(example = "android")]
    pub platform: String,
}

/// A registered device.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub token: String,
    pub platform: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<DeviceRow> for Device {
    fn from(d: DeviceRow) -> Self {
        Device {
            token: d.token,
            platform: d.platform,
            created_at: format_ms(d.created_at),
            updated_at: format_ms(d.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    pub items: Vec<Device>,
}

fn check_token(token: &str) -> ApiResult<()> {
    if token.is_empty() || token.len() > TOKEN_MAX || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::validation(
            "token",
            format!("must be 1 to {TOKEN_MAX} printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

/// Register (or move) a device token for a user.
#[utoipa::path(
    put,
    path = "/v1/users/{userId}/devices",
    tag = "devices",
    params(("userId" = String, Path, description = "The user")),
    request_body(content = RegisterDevice, example = json!({"token": "fMEP0vJqS0Kx:APA91bH", "platform": "android"})),
    responses(
        (status = 201, description = "Registered", body = Device),
        (status = 200, description = "Already registered (moved to this user if it was another's)", body = Device),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = ["app"]))
)]
pub async fn register(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Device>)> {
    check_user(&user_id)?;
    let req: RegisterDevice = serde_json::from_slice(&body).map_err(|e| ApiError::Validation {
        field: None,
        message: format!("expected {{\"token\": …, \"platform\": …}}: {e}"),
    })?;
    check_token(&req.token)?;
    if !matches!(req.platform.as_str(), "android" | "ios" | "web") {
        return Err(ApiError::validation("platform", "must be android, ios or web"));
    }
    let created = state
        .store
        .upsert_device(&user_id, &req.token, &req.platform, state.clock.now_ms())
        .await?;
    let device = state
        .store
        .list_devices(&user_id)
        .await?
        .into_iter()
        .find(|d| d.token == req.token)
        .ok_or_else(|| ApiError::Conflict("registered elsewhere meanwhile".into()))?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(device.into())))
}

/// List a user's registered devices.
#[utoipa::path(
    get,
    path = "/v1/users/{userId}/devices",
    tag = "devices",
    params(("userId" = String, Path, description = "The user")),
    responses((status = 200, body = DeviceList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = ["app"]))
)]
pub async fn list(State(state): State<AppState>, Path(user_id): Path<String>) -> ApiResult<Json<DeviceList>> {
    check_user(&user_id)?;
    let items = state
        .store
        .list_devices(&user_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(DeviceList { items }))
}

/// Unregister a device token (e.g. at log-out).
#[utoipa::path(
    delete,
    path = "/v1/users/{userId}/devices/{token}",
    tag = "devices",
    params(("userId" = String, Path, description = "The user"), ("token" = String, Path, description = "The FCM token (URL-encoded)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "The user has no such device", body = ErrorBody),
    ),
    security(("bearer" = ["app"]))
)]
pub async fn remove(
    State(state): State<AppState>,
    Path((user_id, token)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    check_user(&user_id)?;
    check_token(&token)?;
    if state.store.delete_device(&user_id, &token).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("user {user_id:?} has no such device")))
    }
}
