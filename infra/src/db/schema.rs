// One schema for both engines: text ids, plain timestamps in UTC.

diesel::table! {
    orgs (id) {
        id -> Text,
        parent_id -> Nullable<Text>,
        kind -> Text,
        name -> Text,
        path -> Text,
        depth -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    members (id) {
        id -> Text,
        org_id -> Text,
        group_id -> Nullable<Text>,
        name -> Text,
        phone -> Text,
        password_hash -> Nullable<Text>,
        status -> Text,
        join_date -> Nullable<Date>,
        residence -> Text,
        migrant_city -> Nullable<Text>,
        elderly_or_infirm -> Bool,
        central_household -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    role_grants (id) {
        id -> Text,
        member_id -> Text,
        org_id -> Text,
        role -> Text,
        granted_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        member_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoke_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        issued_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(members -> orgs (org_id));
diesel::joinable!(role_grants -> orgs (org_id));
diesel::joinable!(role_grants -> members (member_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> members (member_id));
diesel::allow_tables_to_appear_in_same_query!(orgs, members, role_grants, sessions, refresh_tokens);
