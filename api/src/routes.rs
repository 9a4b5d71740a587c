//! Every route the server serves, in one table. The router is built from it and a test checks
//! it against openapi.yaml (method, path and operationId), so the two cannot drift apart.

use crate::handlers::{
    attendance, audit, auth, cases, devices, docs, events, health, images, learning, meetings,
    members, moments, orgs, points, roles, settings, sync, video, warnings,
};
use actix_web::web;

macro_rules! routes {
    ($( $method:ident $path:literal $op:literal => $handler:path ;)*) => {
        /// (method, path, operationId) of every route.
        pub const ROUTES: &[(&str, &str, &str)] = &[ $( (stringify!($method), $path, $op) ),* ];

        /// The operationId of a matched route (`pattern` as the router matched it).
        pub fn operation_id(method: &str, pattern: &str) -> Option<&'static str> {
            ROUTES
                .iter()
                .find(|(m, p, _)| *p == pattern && m.eq_ignore_ascii_case(method))
                .map(|(_, _, op)| *op)
        }

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $( cfg.route($path, web::$method().to($handler)); )*
        }
    };
}

routes! {
    get    "/healthz"                          "healthz"             => health::healthz;
    get    "/readyz"                           "readyz"              => health::readyz;
    get    "/metrics"                          "getMetrics"          => health::metrics;
    get    "/openapi.yaml"                     "getOpenApi"          => docs::openapi;
    get    "/docs"                             "getDocs"             => docs::page;
    get    "/docs/assets/{file}"               "getDocsAsset"        => docs::asset;
    post   "/v1/auth/login"                    "login"               => auth::login;
    post   "/v1/auth/refresh"                  "refreshToken"        => auth::refresh_token;
    post   "/v1/auth/logout"                   "logout"              => auth::logout;
    get    "/v1/me"                            "getMe"               => auth::get_me;
    post   "/v1/me/password"                   "changePassword"      => auth::change_password;
    post   "/v1/orgs"                          "createOrg"           => orgs::create_org;
    get    "/v1/orgs"                          "listOrgs"            => orgs::list_orgs;
    get    "/v1/orgs/{org_id}"                 "getOrg"              => orgs::get_org;
    patch  "/v1/orgs/{org_id}"                 "updateOrg"           => orgs::update_org;
    post   "/v1/orgs/{org_id}/members/import"  "importMembers"       => members::import_members;
    get    "/v1/orgs/{org_id}/members/export"  "exportMembers"       => members::export_members;
    get    "/v1/orgs/{org_id}/settings"        "getOrgSettings"      => settings::get_org_settings;
    put    "/v1/orgs/{org_id}/settings"        "updateOrgSettings"   => settings::update_org_settings;
    post   "/v1/members"                       "createMember"        => members::create_member;
    get    "/v1/members"                       "listMembers"         => members::list_members;
    get    "/v1/members/{member_id}"           "getMember"           => members::get_member;
    patch  "/v1/members/{member_id}"           "updateMember"        => members::update_member;
    post   "/v1/members/{member_id}/password"  "resetMemberPassword" => members::reset_member_password;
    post   "/v1/members/{member_id}/deactivate" "deactivateMember"   => members::deactivate_member;
    post   "/v1/roles"                         "grantRole"           => roles::grant_role;
    get    "/v1/roles"                         "listRoles"           => roles::list_roles;
    delete "/v1/roles/{role_id}"               "revokeRole"          => roles::revoke_role;
    post   "/v1/meetings"                      "createMeeting"       => meetings::create_meeting;
    get    "/v1/meetings"                      "listMeetings"        => meetings::list_meetings;
    get    "/v1/meetings/{meeting_id}"         "getMeeting"          => meetings::get_meeting;
    patch  "/v1/meetings/{meeting_id}"         "updateMeeting"       => meetings::update_meeting;
    post   "/v1/meetings/{meeting_id}/cancel"  "cancelMeeting"       => meetings::cancel_meeting;
    get    "/v1/meetings/{meeting_id}/code"    "getMeetingCode"      => meetings::get_meeting_code;
    post   "/v1/meetings/{meeting_id}/clock-in"   "clockIn"              => attendance::clock_in_online;
    get    "/v1/meetings/{meeting_id}/attendance" "getMeetingAttendance" => attendance::get_meeting_attendance;
    post   "/v1/meetings/{meeting_id}/close"      "closeMeeting"         => attendance::close_meeting;
    post   "/v1/meetings/{meeting_id}/leave"      "requestLeave"         => attendance::request_leave;
    post   "/v1/leave-requests/{leave_id}/decision" "decideLeave"        => attendance::decide_leave;
    post   "/v1/meetings/{meeting_id}/video/join" "joinMeetingVideo"     => video::join_meeting_video;
    post   "/v1/video/webhook"                    "videoWebhook"         => video::video_webhook;
    get    "/v1/attendance/stats"                 "getAttendanceStats"   => attendance::get_attendance_stats;
    get    "/v1/me/attendance"                    "listMyAttendance"     => attendance::list_my_attendance;
    post   "/v1/posts"                         "createPost"          => moments::create_post;
    get    "/v1/posts"                         "listPosts"           => moments::list_posts;
    get    "/v1/posts/{post_id}"               "getPost"             => moments::get_post;
    patch  "/v1/posts/{post_id}"               "updatePost"          => moments::update_post;
    post   "/v1/posts/{post_id}/close"         "closePost"           => moments::close_post;
    post   "/v1/posts/{post_id}/like"          "likePost"            => moments::like;
    delete "/v1/posts/{post_id}/like"          "unlikePost"          => moments::unlike;
    post   "/v1/posts/{post_id}/comments"      "createComment"       => moments::create_comment;
    get    "/v1/posts/{post_id}/comments"      "listComments"        => moments::list_comments;
    post   "/v1/comments/{comment_id}/like"    "likeComment"         => moments::like_a_comment;
    delete "/v1/comments/{comment_id}/like"    "unlikeComment"       => moments::unlike_a_comment;
    post   "/v1/comments/{comment_id}/reports" "reportComment"       => moments::report_comment;
    post   "/v1/comments/{comment_id}/hide"    "hideComment"         => moments::hide_comment;
    get    "/v1/reports"                       "listReports"         => moments::list_reports;
    post   "/v1/reports/{report_id}/dismiss"   "dismissReport"       => moments::dismiss_report;
    post   "/v1/images"                        "uploadImage"         => images::upload_image;
    get    "/v1/images/{image_id}"             "getImage"            => images::get_image;
    post   "/v1/households"                    "createHousehold"     => moments::create_household;
    get    "/v1/households"                    "listHouseholds"      => moments::list_households;
    get    "/v1/cases"                         "listCases"           => cases::list_cases;
    get    "/v1/cases/stats"                   "getCaseStats"        => cases::get_case_stats;
    get    "/v1/cases/{case_id}"               "getCase"             => cases::get_case;
    post   "/v1/cases/{case_id}/accept"        "acceptCase"          => cases::accept_case;
    post   "/v1/cases/{case_id}/assign"        "assignCase"          => cases::assign_case;
    post   "/v1/cases/{case_id}/resolve"       "resolveCase"         => cases::resolve_case;
    post   "/v1/cases/{case_id}/decline"       "declineCase"         => cases::decline_case;
    post   "/v1/cases/{case_id}/transfer"      "transferCase"        => cases::transfer_case;
    post   "/v1/cases/{case_id}/merge"         "mergeCases"          => cases::merge_cases;
    post   "/v1/learning/items"                "createLearningItem"  => learning::create_learning_item;
    get    "/v1/learning/items"                "listLearningItems"   => learning::list_learning_items;
    get    "/v1/learning/items/{item_id}"      "getLearningItem"     => learning::get_learning_item;
    post   "/v1/learning/items/{item_id}/progress" "reportLearningProgress" => learning::report_learning_progress;
    post   "/v1/learning/items/{item_id}/quiz" "submitQuiz"          => learning::submit_quiz;
    get    "/v1/learning/items/{item_id}/stats" "getLearningItemStats" => learning::get_learning_item_stats;
    post   "/v1/learning/visits"               "recordLearningVisit" => learning::record_learning_visit;
    get    "/v1/orgs/{org_id}/points-rules"    "getPointsRules"      => points::get_points_rules;
    put    "/v1/orgs/{org_id}/points-rules"    "updatePointsRules"   => points::update_points_rules;
    get    "/v1/members/{member_id}/points"    "getMemberPoints"     => points::get_member_points;
    get    "/v1/points/entries"                "listPointsEntries"   => points::list_points_entries;
    post   "/v1/points/adjustments"            "createPointsAdjustment" => points::create_points_adjustment;
    post   "/v1/points/adjustments/{entry_id}/post" "postPointsAdjustment" => points::post_points_adjustment;
    post   "/v1/points/adjustments/{entry_id}/void" "voidPointsAdjustment" => points::void_points_adjustment;
    get    "/v1/points/ranking"                "getRanking"          => points::get_ranking;
    get    "/v1/points/ranking/export"         "exportRanking"       => points::export_ranking;
    post   "/v1/points/lists"                  "generateLists"       => points::generate_lists;
    get    "/v1/points/lists"                  "listLists"           => points::list_lists;
    get    "/v1/points/lists/{list_id}"        "getList"             => points::get_list;
    post   "/v1/points/lists/{list_id}/publish" "publishList"        => points::publish_list;
    get    "/v1/points/lists/{list_id}/export" "exportList"          => points::export_list;
    get    "/v1/points/admonitions"            "getAdmonitionCounts" => points::get_admonition_counts;
    post   "/v1/volunteer-services"            "recordVolunteerService" => points::record_volunteer_service;
    post   "/v1/volunteer-services/{service_id}/confirm" "confirmVolunteerService" => points::confirm_volunteer_service;
    get    "/v1/compliance"                    "getCompliance"       => warnings::get_compliance;
    get    "/v1/events"                        "streamEvents"        => events::stream_events;
    get    "/v1/orgs/{org_id}/assessment"      "getBranchAssessment" => warnings::get_branch_assessment;
    get    "/v1/assessments"                   "listBranchAssessments" => warnings::list_branch_assessments;
    get    "/v1/assessments/export"            "exportBranchAssessments" => warnings::export_branch_assessments;
    get    "/v1/warnings"                      "listWarnings"        => warnings::list_warnings;
    get    "/v1/warnings/{warning_id}"         "getWarning"          => warnings::get_warning;
    post   "/v1/warnings/{warning_id}/read"    "markWarningRead"     => warnings::mark_warning_read;
    post   "/v1/warnings/{warning_id}/acknowledge" "acknowledgeWarning" => warnings::acknowledge_warning;
    post   "/v1/warnings/{warning_id}/rectification/answer" "answerRectification" => warnings::answer_rectification;
    post   "/v1/warnings/{warning_id}/rectification/verify" "verifyRectification" => warnings::verify_rectification;
    post   "/v1/warnings/{warning_id}/rectification/return" "returnRectification" => warnings::return_rectification;
    post   "/v1/devices"                       "registerDevice"      => devices::register_device;
    get    "/v1/devices"                       "listDevices"         => devices::list_devices;
    post   "/v1/devices/{device_id}/revoke"    "revokeDevice"        => devices::revoke_device;
    put    "/v1/devices/{device_id}/push-token" "registerPushToken"  => devices::register_push_token;
    delete "/v1/devices/{device_id}/push-token" "deletePushToken"    => devices::delete_push_token;
    get    "/v1/push/dead-letters"             "listDeadLetters"     => warnings::list_dead_letters;
    post   "/v1/push/dead-letters/{push_id}/replay" "replayDeadLetter" => warnings::replay_dead_letter;
    post   "/v1/sync/push"                     "syncPush"            => sync::push;
    post   "/v1/sync/pull"                     "syncPull"            => sync::pull;
    get    "/v1/sync/status"                   "syncStatus"          => sync::status;
    get    "/v1/audit-events"                  "listAuditEvents"     => audit::list_audit_events;
    get    "/v1/me/export"                     "exportMyData"        => audit::export_my_data;
}
