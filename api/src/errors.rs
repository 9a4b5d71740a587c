//! The one error type of the API. Each error has a stable machine `code` (part of the wire
//! contract) and a human message in Chinese or English. Handlers return `ApiError`; the request
//! middleware renders it as `application/problem+json` in the caller's language with the
//! request id.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use yunlian_domain::{Error, FieldError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// Picks from `Accept-Language`: the highest-weighted of zh and en; Chinese by default.
    pub fn from_header(h: Option<&str>) -> Lang {
        let Some(h) = h else { return Lang::Zh };
        let mut best: Option<(f32, Lang)> = None;
        for part in h.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|v| v.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = if tag.starts_with("en") {
                Lang::En
            } else if tag.starts_with("zh") {
                Lang::Zh
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::Zh)
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub fields: Vec<FieldError>,
    pub retry_after: Option<u64>,
    /// Members merged into the problem body (e.g. `expected_id` of a mutation gap).
    pub extra: Option<Box<serde_json::Value>>,
    /// Extra detail for the log only (never sent: it may hold internals).
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str) -> Self {
        ApiError {
            status,
            code,
            fields: Vec::new(),
            retry_after: None,
            extra: None,
            internal: None,
        }
    }
    pub fn bad_request(code: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code)
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found")
    }
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden")
    }
    pub fn field(field: &str, code: &'static str) -> Self {
        Error::invalid(field, code).into()
    }

    /// The problem body in `lang`, carrying the request id.
    pub fn body(&self, lang: Lang, request_id: &str) -> serde_json::Value {
        let title = message(self.code, lang);
        let mut body = json!({
            "type": format!("urn:yunlian:problem:{}", self.code),
            "title": title,
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": title,
            "request_id": request_id,
        });
        if !self.fields.is_empty() {
            body["errors"] = self
                .fields
                .iter()
                .map(|f| {
                    let mut e = json!({
                        "field": f.field,
                        "code": f.code,
                        "message": message(f.code, lang),
                    });
                    if let Some(l) = f.line {
                        e["line"] = json!(l);
                    }
                    e
                })
                .collect();
        }
        if let Some(s) = self.retry_after {
            body["retry_after"] = json!(s);
        }
        if let Some(serde_json::Value::Object(extra)) = self.extra.as_deref() {
            for (k, v) in extra {
                body[k] = v.clone();
            }
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)?;
        if let Some(i) = &self.internal {
            write!(f, ": {i}")?;
        }
        Ok(())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    /// A plain rendering; the request middleware re-renders it in the caller's language.
    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.content_type("application/problem+json");
        if let Some(s) = self.retry_after {
            res.insert_header(("Retry-After", s.to_string()));
        }
        res.body(self.body(Lang::Zh, "").to_string())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(fields) => ApiError {
                fields,
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            },
            Error::Unprocessable(code) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code),
            Error::NotFound => ApiError::not_found(),
            Error::Forbidden(code) => ApiError::new(StatusCode::FORBIDDEN, code),
            Error::Conflict(code) => ApiError::new(StatusCode::CONFLICT, code),
            Error::Unauthenticated(code) => ApiError::new(StatusCode::UNAUTHORIZED, code),
            Error::RateLimited { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
            },
            Error::Unavailable(why) => ApiError {
                retry_after: Some(5),
                internal: Some(why),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
            },
            Error::Busy(why) => ApiError {
                retry_after: Some(1),
                internal: Some(why),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database_busy")
            },
            Error::StorageFull(why) => ApiError {
                retry_after: Some(60),
                internal: Some(why),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_full")
            },
            Error::Internal(why) => ApiError {
                internal: Some(why),
                ..ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal")
            },
        }
    }
}

/// The human message of a code; a code without an entry falls back to a generic message (the
/// machine `code` is still exact).
pub fn message(code: &str, lang: Lang) -> &'static str {
    let (zh, en) = match code {
        "malformed_json" => (
            "请求体不是有效的 JSON",
            "The request body is not valid JSON",
        ),
        "unknown_field" => ("请求包含未知字段", "The request contains an unknown field"),
        "missing_field" => ("缺少必填字段", "A required field is missing"),
        "invalid_type" => ("字段类型不正确", "A field has the wrong type"),
        "invalid_query" => ("查询参数不正确", "A query parameter is invalid"),
        "invalid_cursor" => ("分页游标无效", "The page cursor is invalid"),
        "payload_too_large" => ("请求体过大", "The request body is too large"),
        "unsupported_media_type" => ("不支持的内容类型", "Unsupported content type"),
        "validation_failed" => ("输入有误，请检查标出的字段", "Some fields are invalid"),
        "unauthenticated" => ("请先登录", "Please log in"),
        "token_invalid" => ("登录凭证无效", "The access token is invalid"),
        "token_expired" => (
            "登录已过期，请刷新或重新登录",
            "The access token has expired",
        ),
        "session_revoked" => (
            "登录已失效，请重新登录",
            "This session has ended; log in again",
        ),
        "invalid_credentials" => ("手机号或密码错误", "Wrong phone number or password"),
        "refresh_token_invalid" => ("刷新凭证无效，请重新登录", "The refresh token is invalid"),
        "refresh_token_reused" => (
            "刷新凭证已被使用，为安全起见该登录已全部注销",
            "The refresh token was already used; this login has been revoked for safety",
        ),
        "wrong_password" => ("当前密码不正确", "The current password is wrong"),
        "too_many_attempts" => (
            "尝试次数过多，请稍后再试",
            "Too many attempts; try again later",
        ),
        "forbidden" => ("没有权限执行此操作", "You may not do this"),
        "role_out_of_scope" => (
            "只能在本人管辖范围内授予或撤销该角色",
            "You may only grant or revoke this role within your own organisation",
        ),
        "not_found" => ("未找到", "Not found"),
        "route_not_found" => ("接口不存在", "No such endpoint"),
        "phone_taken" => ("该手机号已被使用", "This phone number is already in use"),
        "org_name_taken" => (
            "同级组织中已有此名称",
            "A sibling organisation already has this name",
        ),
        "role_already_granted" => ("该成员已拥有此角色", "The member already holds this role"),
        "conflict" => ("与现有数据冲突", "Conflicts with existing data"),
        "cannot_revoke_own_admin" => (
            "不能撤销自己的管理员角色",
            "You cannot revoke your own admin role",
        ),
        "org_id_required" => ("请指定组织", "Choose an organisation (org_id)"),
        "csv_not_utf8" => (
            "文件不是 UTF-8 编码，请在表格软件中另存为“CSV UTF-8”",
            "The file is not UTF-8; save it as \"CSV UTF-8\"",
        ),
        "csv_malformed" => ("CSV 格式错误", "The CSV is malformed"),
        "csv_too_many_rows" => ("一次最多导入 5000 行", "At most 5,000 rows per import"),
        "csv_header_missing" => (
            "缺少必需的表头（姓名、手机号）",
            "A required column header is missing",
        ),
        "csv_duplicate_header" => ("表头重复", "A column header appears twice"),
        "roster_invalid" => (
            "名册有错误，未导入任何数据",
            "The roster has errors; nothing was imported",
        ),
        "client_not_yours" => (
            "该客户端属于其他党员",
            "This client id belongs to another member",
        ),
        "mutation_gap" => (
            "离线操作序号不连续，请从指定序号重传",
            "A queued mutation is missing; resend from expected_id",
        ),
        "unsupported_schema_version" => (
            "客户端版本过旧，请升级",
            "Unsupported schema version; update the app",
        ),
        "too_many_mutations" => ("一次最多上传 500 条", "At most 500 mutations per push"),
        "mutation_ids_not_consecutive" => {
            ("操作序号必须连续递增", "Mutation ids must increase by one")
        }
        "limit_too_large" => ("每页最多 1000 条", "At most 1,000 rows per page"),
        "invalid_scope" => ("同步范围格式不正确", "Not a valid sync scope"),
        "invalid_public_key" => ("设备公钥无效", "Not a valid public key for that algorithm"),
        "too_many_devices" => (
            "登记的设备过多，请先注销旧设备",
            "Too many devices; revoke an old one first",
        ),
        "meeting_type_not_for_org" => (
            "党小组会由党小组召开，其他会议由支部召开",
            "Party group meetings belong to a group; other meetings to a branch",
        ),
        "meeting_not_planned" => (
            "会议已召开或已取消，不能再修改安排",
            "The meeting is no longer planned",
        ),
        "bad_signature" => ("签名校验失败", "The device signature does not verify"),
        "device_revoked" => ("该设备已注销", "This device has been revoked"),
        "device_not_yours" => (
            "不是本人登记的设备",
            "Not a device registered by this member",
        ),
        "code_invalid" => ("会议码无效或已过期", "The meeting code is wrong or expired"),
        "location_required" => ("本会议需要定位签到", "This meeting needs your location"),
        "outside_fence" => ("不在会议地点范围内", "Outside the meeting place"),
        "too_early" => ("签到尚未开始", "Check-in has not opened yet"),
        "meeting_closed" => ("会议已结束，不能签到", "The meeting is over"),
        "meeting_cancelled" => ("会议已取消", "The meeting was cancelled"),
        "not_expected" => (
            "您不在本次会议的应到人员中",
            "You are not expected at this meeting",
        ),
        "event_in_future" => (
            "签到时间晚于服务器时间",
            "The clock-in time is in the future",
        ),
        "meeting_not_started" => ("会议尚未开始", "The meeting has not started"),
        "too_late_for_leave" => (
            "会议开始后不能请假",
            "Leave must be requested before the meeting",
        ),
        "leave_already_requested" => ("已提交过请假", "Leave was already requested"),
        "leave_already_decided" => ("该请假已审批", "This leave request was already decided"),
        "video_not_configured" => ("未配置视频服务", "No video service is configured"),
        "no_video_room" => ("本次会议没有视频会议室", "This meeting has no video room"),
        "bad_webhook_signature" => ("回调签名无效", "The webhook signature does not verify"),
        "service_unavailable" => (
            "服务暂时不可用，请稍后重试",
            "Service unavailable; retry shortly",
        ),
        "mutation_id_reused" => (
            "同一编号的操作内容不一致",
            "This mutation id was used before with other content",
        ),
        "member_holds_higher_role" => (
            "该党员担任的职务超出您的授权范围",
            "This member holds a role you could not grant",
        ),
        "settings_version_mismatch" => (
            "设置已被他人修改，请刷新后重试",
            "The settings changed since you read them; reload and retry",
        ),
        "settings_changed" => (
            "设置正在被他人修改，请刷新后重试",
            "Someone else changed the settings at the same moment; reload and retry",
        ),
        "control_character" => ("包含不允许的控制字符", "Contains a control character"),
        "invisible_character" => (
            "包含不可见或改变方向的字符",
            "Contains an invisible or direction-changing character",
        ),
        "invalid_limit" => ("每页数量至少为 1", "The page size must be at least 1"),
        "invalid_mutation_name" => ("操作名称不正确", "Not a valid mutation name"),
        "invalid_boot_id" => ("设备启动标识不正确", "Not a valid boot id"),
        "too_many_cursors" => ("同步游标过多", "Too many cursors in one pull"),
        "implausible_device_time" => (
            "设备时间不可信，请校准手机时间",
            "The phone's time is not one a phone can have",
        ),
        "member_already_left" => ("该党员已离开", "The member has already left"),
        "cannot_deactivate_self" => ("不能停用自己的账号", "You cannot deactivate your own account"),
        "storage_full" => (
            "服务器存储空间已满，请稍后重试",
            "The server's disk is full; retry later",
        ),
        "database_busy" => (
            "系统繁忙，请稍后重试",
            "The server is busy with other writes; retry shortly",
        ),
        "internal" => ("服务器内部错误", "Internal server error"),
        // field codes
        "required" => ("必填", "Required"),
        "too_long" => ("过长", "Too long"),
        "invalid_phone" => ("手机号格式不正确", "Not a valid mobile number"),
        "duplicate_phone_in_file" => ("文件中手机号重复", "This phone appears earlier in the file"),
        "out_of_range" => ("超出允许范围", "Out of range"),
        "grades_out_of_order" => (
            "B 级分数线须低于 A 级",
            "The B grade's threshold must be under the A grade's",
        ),
        "invalid_date" => ("日期格式不正确", "Not a valid date"),
        "invalid_status" => (
            "党员类别应为“正式党员”或“预备党员”",
            "Status must be full or probationary",
        ),
        "invalid_residence" => (
            "居住情况应为“在家”或“外出”",
            "Residence must be at home or migrant",
        ),
        "invalid_flag" => ("应填“是”或“否”", "Must be yes or no"),
        "invalid_value" => ("取值不正确", "Invalid value"),
        "password_too_weak" => (
            "密码至少 8 位，且包含字母和数字",
            "Passwords need 8+ characters with letters and digits",
        ),
        "kind_not_allowed_under_parent" => (
            "该类型组织不能设在此上级组织下",
            "This kind of organisation cannot sit under that parent",
        ),
        "role_not_allowed_for_org" => (
            "该角色不适用于此类组织",
            "This role does not fit that organisation",
        ),
        "member_outside_org" => (
            "该成员不属于此组织",
            "The member does not belong to that organisation",
        ),
        "group_not_found" => ("本支部下没有该党小组", "No such party group in this branch"),
        "org_not_found" => ("组织不存在", "No such organisation"),
        "org_holds_no_members" => (
            "党员须编入支部或党委",
            "Members belong to a branch or committee",
        ),
        "rules_version_mismatch" => (
            "积分规则已被他人修改，请刷新后重试",
            "The rules were changed meanwhile; reload and try again",
        ),
        "caps_contradict" => ("积分上限相互矛盾", "The caps contradict each other"),
        "cap_on_a_deduction" => ("扣分项不设上限", "A deduction takes no cap"),
        "must_deduct" => ("该项必须为扣分", "This rule must deduct"),
        "invalid_period" => (
            "期间格式应为 2026-12、2026-Q4 或 2026",
            "A period is 2026-12, 2026-Q4 or 2026",
        ),
        "invalid_lesson" => (
            "课时须有标题，类型为文章、视频或音频，时长 10 秒至 6 小时",
            "A lesson needs a title, a kind (article, video or audio) and 10 s to 6 h",
        ),
        "only_for_a_course" => ("只有专题课程才有课时", "Only a course has lessons"),
        "not_a_course" => ("该学习内容不是专题课程", "This item is not a course"),
        "range_reversed" => ("结束月份早于开始月份", "The last month is before the first"),
        "range_too_long" => ("时间跨度最多 60 个月", "The range spans at most 60 months"),
        "own_adjustment" => (
            "录入人不能自己审核，须由另一名支委审核",
            "Another committee member must post what you entered",
        ),
        "adjustment_decided" => (
            "该积分调整已审核或已作废",
            "The adjustment was already decided",
        ),
        "not_pending" => ("该积分记录无需审核", "That entry is not pending"),
        "in_the_future" => ("时间不能晚于现在", "The time is in the future"),
        "service_confirmed" => ("该志愿服务已确认", "The service was already confirmed"),
        "invalid_question" => (
            "题目或选项不完整",
            "A question or its options are incomplete",
        ),
        "answers_do_not_fit" => ("答案与题目不符", "The answers do not fit the questions"),
        "not_elderly_or_infirm" => (
            "送学上门仅适用于年老体弱党员",
            "Learning visits are for elderly or infirm members",
        ),
        "quiz_is_submitted" => ("测验请提交答案", "A quiz is submitted, not progressed"),
        "not_a_quiz" => ("该学习内容不是测验", "That item is not a quiz"),
        "quiz_already_submitted" => ("该测验已提交", "The quiz was already submitted"),
        "list_already_published" => ("该红黄榜已发布", "The lists were already published"),
        "invalid_last_event_id" => (
            "Last-Event-ID 格式不正确",
            "Not a Last-Event-ID this server gave (epoch:offset)",
        ),
        "invalid_provider" => (
            "推送通道不正确",
            "Not a push channel this server knows (huawei, xiaomi, oppo, vivo, honor, apns, jpush, getui)",
        ),
        "invalid_push_token" => ("推送令牌格式不正确", "Not a valid push token"),
        "push_not_dead" => ("该推送不在死信队列中", "That push is not a dead letter"),
        "warning_not_yours" => ("该预警不是发给您的", "That warning is not addressed to you"),
        "rectification_not_awaiting_answer" => (
            "该整改提示单不在待答复状态",
            "That rectification notice is not waiting for an answer",
        ),
        "rectification_not_answered" => (
            "该整改提示单尚未答复",
            "That rectification notice has not been answered",
        ),
        "rectification_own_answer" => (
            "不能审核自己提交的整改答复",
            "You may not decide on your own answer",
        ),
        "rectification_decided_above" => (
            "整改答复由上级党组织审核",
            "The org above decides on a rectification answer",
        ),
        "list_not_published" => ("该红黄榜尚未发布", "The lists are not published yet"),
        "not_an_image" => (
            "上传的文件不是图片（支持 JPEG、PNG、WebP）",
            "The upload is not an image (JPEG, PNG or WebP)",
        ),
        "image_too_large" => ("图片不能超过8MB", "An image is at most 8 MB"),
        "image_too_many_pixels" => (
            "图片像素过多（最多4000万像素，边长不超过10000）",
            "The image has too many pixels (40 megapixels, 10,000 a side at most)",
        ),
        "malformed_body" => ("请求体读取失败", "The request body could not be read"),
        "post_closed" => ("该话题已关闭", "The topic is closed"),
        "feedback_closed" => (
            "该话题的意见征集已截止",
            "The topic no longer takes comments",
        ),
        "comment_hidden" => ("该评论已被隐藏", "The comment is hidden"),
        "not_in_audience" => (
            "该话题只征集指定党小组的意见",
            "The topic asks only some party groups",
        ),
        "report_decided" => ("该举报已处理", "The report was already decided"),
        "already_hidden" => ("该评论已被隐藏", "The comment is already hidden"),
        "already_reported" => ("您已举报过该评论", "You have already reported this comment"),
        "household_limit_reached" => (
            "一名党员中心户最多联系10户",
            "A central household member relays for at most ten households",
        ),
        "not_central_household" => (
            "该党员不是本支部的党员中心户",
            "That member is not a central household member of this branch",
        ),
        "household_not_found" => ("本支部没有该农户", "No such household in this branch"),
        "org_not_a_branch" => ("话题须发布在党支部", "Topics are posted on a branch"),
        "too_many_images" => ("图片最多9张", "At most nine images"),
        "duplicate_image" => ("图片重复", "An image is listed twice"),
        "image_not_found" => (
            "图片不存在或已用于其他话题",
            "No such image, or it belongs to another topic",
        ),
        "in_the_past" => ("时间已过", "The time has passed"),
        "too_far_ahead" => ("时间太远", "The time is too far ahead"),
        "groups_need_commenters_groups" => (
            "指定党小组时评论范围须为党小组",
            "Groups are named only when the commenters are groups",
        ),
        "period_empty" => (
            "统计区间的结束须晚于开始",
            "The period must end after it starts",
        ),
        "case_not_found" => ("该办件不存在", "No such case"),
        "case_closed" => ("该办件已办结", "The case is closed"),
        "case_already_assigned" => ("该办件已受理交办", "The case is already assigned"),
        "case_not_assigned" => ("该办件尚未交办", "The case is not assigned yet"),
        "case_already_transferred" => (
            "该办件已转交乡镇",
            "The case was already transferred to the township",
        ),
        "case_not_overdue" => ("该办件未超期", "The case is not overdue"),
        "merge_into_self" => ("不能与自身合并", "A case cannot be merged into itself"),
        "merge_other_branch" => (
            "只能合并同一支部的办件",
            "Only cases of one branch can be merged",
        ),
        "merge_target_closed" => (
            "目标办件已合并或已不予办理",
            "The surviving case is merged or declined",
        ),
        "assignee_not_on_committee" => (
            "承办人须为承办组织的委员",
            "The assignee must sit on the handling committee",
        ),
        "no_township_above" => ("上级没有乡镇党委", "There is no township committee above"),
        _ => ("请求失败", "Request failed"),
    };
    match lang {
        Lang::Zh => zh,
        Lang::En => en,
    }
}
