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
        left_at -> Nullable<Timestamp>,
        erased_at -> Nullable<Timestamp>,
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

diesel::table! {
    sync_scopes (scope) {
        scope -> Text,
        version -> BigInt,
        epoch -> Text,
        floor -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sync_index (scope, entity, entity_id) {
        scope -> Text,
        entity -> Text,
        entity_id -> Text,
        version -> BigInt,
        deleted -> Bool,
        changed_at -> Timestamp,
    }
}

diesel::table! {
    sync_clients (client_id) {
        client_id -> Text,
        member_id -> Text,
        last_mutation_id -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sync_mutations (client_id, mutation_id) {
        client_id -> Text,
        mutation_id -> BigInt,
        name -> Text,
        status -> Text,
        code -> Nullable<Text>,
        result -> Nullable<Text>,
        event_time -> Timestamp,
        time_source -> Text,
        created_at -> Timestamp,
        digest -> Nullable<Text>,
    }
}

diesel::table! {
    org_settings (org_id, version) {
        org_id -> Text,
        version -> BigInt,
        overrides -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    consumed (consumer, event_id) {
        consumer -> Text,
        event_id -> Text,
        consumed_at -> Timestamp,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        holder -> Text,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(sync_mutations -> sync_clients (client_id));
diesel::allow_tables_to_appear_in_same_query!(
    sync_scopes,
    sync_index,
    sync_clients,
    sync_mutations
);

diesel::table! {
    devices (id) {
        id -> Text,
        member_id -> Text,
        algorithm -> Text,
        public_key -> Text,
        unlock -> Text,
        label -> Nullable<Text>,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
    }
}

diesel::joinable!(devices -> members (member_id));
diesel::allow_tables_to_appear_in_same_query!(devices, members);
diesel::allow_tables_to_appear_in_same_query!(devices, orgs);

diesel::table! {
    meetings (id) {
        id -> Text,
        org_id -> Text,
        meeting_type -> Text,
        title -> Text,
        agenda -> Nullable<Text>,
        starts_at -> Timestamp,
        ends_at -> Timestamp,
        place -> Nullable<Text>,
        fence_lat -> Nullable<Double>,
        fence_lng -> Nullable<Double>,
        fence_radius_m -> Nullable<Double>,
        video_room -> Nullable<Text>,
        opens_before_min -> BigInt,
        on_time_after_min -> BigInt,
        status -> Text,
        minutes -> Nullable<Text>,
        secret -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(meetings -> orgs (org_id));
diesel::allow_tables_to_appear_in_same_query!(meetings, orgs);
diesel::allow_tables_to_appear_in_same_query!(clock_ins, members);
diesel::allow_tables_to_appear_in_same_query!(clock_ins, devices);

diesel::table! {
    clock_ins (id) {
        id -> Text,
        meeting_id -> Text,
        member_id -> Text,
        device_id -> Text,
        punctuality -> Text,
        event_time -> Timestamp,
        time_source -> Text,
        device_time -> Timestamp,
        code -> Text,
        lat -> Nullable<Double>,
        lng -> Nullable<Double>,
        accuracy_m -> Nullable<Double>,
        signature -> Text,
        unlock -> Text,
        via -> Text,
        created_at -> Timestamp,
        coarse -> Bool,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> Timestamp,
        actor_id -> Nullable<Text>,
        operation -> Text,
        subject_kind -> Text,
        subject_id -> Text,
        org_path -> Text,
        request_id -> Nullable<Text>,
        changes -> Text,
    }
}

diesel::table! {
    leave_requests (id) {
        id -> Text,
        meeting_id -> Text,
        member_id -> Text,
        reason -> Text,
        status -> Text,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        note -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    video_events (event_id) {
        event_id -> Text,
        meeting_id -> Text,
        member_id -> Text,
        kind -> Text,
        at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    meeting_attendance (meeting_id, member_id) {
        meeting_id -> Text,
        member_id -> Text,
        status -> Text,
        video_secs -> BigInt,
        migrant -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        topic -> Text,
        subject -> Text,
        payload -> Text,
        created_at -> Timestamp,
        published_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(meeting_attendance, meetings);
diesel::allow_tables_to_appear_in_same_query!(meeting_attendance, orgs);
diesel::allow_tables_to_appear_in_same_query!(meeting_attendance, members);
diesel::allow_tables_to_appear_in_same_query!(leave_requests, meetings);
diesel::allow_tables_to_appear_in_same_query!(leave_requests, orgs);
diesel::joinable!(leave_requests -> meetings (meeting_id));
diesel::joinable!(meeting_attendance -> meetings (meeting_id));

diesel::table! {
    households (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        address -> Nullable<Text>,
        central_member_id -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    images (id) {
        id -> Text,
        org_id -> Text,
        uploaded_by -> Text,
        content_type -> Text,
        width -> BigInt,
        height -> BigInt,
        bytes -> BigInt,
        post_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    posts (id) {
        id -> Text,
        org_id -> Text,
        title -> Text,
        body -> Text,
        image_ids -> Text,
        feedback_until -> Timestamp,
        commenters -> Text,
        group_ids -> Text,
        pinned -> Bool,
        closed_at -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        comment_count -> BigInt,
        like_count -> BigInt,
    }
}

diesel::table! {
    comments (id) {
        id -> Text,
        post_id -> Text,
        org_id -> Text,
        author_id -> Text,
        body -> Text,
        category -> Text,
        household_id -> Nullable<Text>,
        case_id -> Nullable<Text>,
        like_count -> BigInt,
        hidden_reason -> Nullable<Text>,
        hidden_by -> Nullable<Text>,
        hidden_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    post_likes (post_id, member_id) {
        post_id -> Text,
        member_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    comment_likes (comment_id, member_id) {
        comment_id -> Text,
        member_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    comment_reports (id) {
        id -> Text,
        comment_id -> Text,
        org_id -> Text,
        reporter_id -> Text,
        reason -> Text,
        state -> Text,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    cases (id) {
        id -> Text,
        org_id -> Text,
        handler_org_id -> Text,
        post_id -> Text,
        comment_id -> Text,
        author_id -> Text,
        household_id -> Nullable<Text>,
        category -> Text,
        body -> Text,
        state -> Text,
        assignee_id -> Nullable<Text>,
        due_at -> Nullable<Timestamp>,
        overdue_at -> Nullable<Timestamp>,
        reply -> Nullable<Text>,
        decline_reason -> Nullable<Text>,
        merged_into -> Nullable<Text>,
        transferred_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    case_steps (id) {
        id -> Text,
        case_id -> Text,
        action -> Text,
        actor_id -> Nullable<Text>,
        at -> Timestamp,
        note -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(posts, orgs);
diesel::allow_tables_to_appear_in_same_query!(comments, orgs);
diesel::allow_tables_to_appear_in_same_query!(comments, posts);
diesel::allow_tables_to_appear_in_same_query!(cases, orgs);
diesel::allow_tables_to_appear_in_same_query!(households, orgs);
diesel::allow_tables_to_appear_in_same_query!(comment_reports, orgs);
diesel::allow_tables_to_appear_in_same_query!(images, orgs);

diesel::table! {
    points_rules (org_id, version) {
        org_id -> Text,
        version -> BigInt,
        rules -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    points_entries (id) {
        id -> Text,
        member_id -> Text,
        org_id -> Text,
        delta -> BigInt,
        rule -> Text,
        rule_version -> Text,
        source -> Text,
        idem_key -> Text,
        period -> Text,
        day -> Text,
        occurred_at -> Timestamp,
        pending -> Bool,
        resolves -> Nullable<Text>,
        resolution -> Nullable<Text>,
        reason -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    volunteer_services (id) {
        id -> Text,
        member_id -> Text,
        org_id -> Text,
        title -> Text,
        served_at -> Timestamp,
        confirmed_by -> Nullable<Text>,
        confirmed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    points_marks (org_id, period) {
        org_id -> Text,
        period -> Text,
        appended -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(points_marks, orgs);

diesel::table! {
    points_totals (org_id, period, member_id) {
        member_id -> Text,
        org_id -> Text,
        period -> Text,
        total -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(points_totals, orgs);

diesel::table! {
    lesson_progress (member_id, item_id, lesson) {
        member_id -> Text,
        item_id -> Text,
        lesson -> BigInt,
        last_at -> Nullable<Timestamp>,
        last_position -> BigInt,
        credited_secs -> BigInt,
        completed_at -> Nullable<Timestamp>,
    }
}
diesel::allow_tables_to_appear_in_same_query!(points_entries, orgs);
diesel::allow_tables_to_appear_in_same_query!(points_entries, members);
diesel::allow_tables_to_appear_in_same_query!(volunteer_services, orgs);

diesel::allow_tables_to_appear_in_same_query!(outbox, consumed);

diesel::table! {
    points_lists (id) {
        id -> Text,
        org_id -> Text,
        period -> Text,
        state -> Text,
        entries -> Text,
        generated_by -> Text,
        generated_at -> Timestamp,
        published_by -> Nullable<Text>,
        published_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(points_lists, orgs);

diesel::table! {
    learning_items (id) {
        id -> Text,
        org_id -> Text,
        kind -> Text,
        title -> Text,
        body -> Nullable<Text>,
        length_secs -> BigInt,
        required_percent -> BigInt,
        questions -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        lessons -> Text,
    }
}

diesel::table! {
    learning_progress (member_id, item_id) {
        member_id -> Text,
        item_id -> Text,
        last_at -> Nullable<Timestamp>,
        last_position -> BigInt,
        credited_secs -> BigInt,
        completed_at -> Nullable<Timestamp>,
        visit -> Bool,
    }
}

diesel::table! {
    quiz_submissions (member_id, item_id) {
        member_id -> Text,
        item_id -> Text,
        answers -> Text,
        correct -> BigInt,
        total -> BigInt,
        submitted_at -> Timestamp,
    }
}

diesel::table! {
    learning_visits (id) {
        id -> Text,
        item_id -> Text,
        member_id -> Text,
        visitor_id -> Text,
        duration_secs -> BigInt,
        confirmation -> Text,
        note -> Nullable<Text>,
        visited_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(learning_items, orgs);
diesel::allow_tables_to_appear_in_same_query!(learning_progress, members);
diesel::allow_tables_to_appear_in_same_query!(learning_progress, orgs);

diesel::table! {
    warnings (id) {
        id -> Text,
        dedup_key -> Text,
        rule -> Text,
        level -> Text,
        org_id -> Text,
        recipient_member_id -> Nullable<Text>,
        recipient_org_id -> Nullable<Text>,
        subject -> Text,
        period -> Text,
        detail -> Text,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        read_at -> Nullable<Timestamp>,
        read_by -> Nullable<Text>,
        acknowledged_at -> Nullable<Timestamp>,
        acknowledged_by -> Nullable<Text>,
        resolved_at -> Nullable<Timestamp>,
        resolution -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    rectifications (id) {
        id -> Text,
        warning_id -> Text,
        org_id -> Text,
        period -> Text,
        state -> Text,
        due_at -> Timestamp,
        answer -> Nullable<Text>,
        attachments -> Text,
        answered_by -> Nullable<Text>,
        answered_at -> Nullable<Timestamp>,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        return_reason -> Nullable<Text>,
        rounds -> BigInt,
        escalated_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(warnings, orgs);
diesel::allow_tables_to_appear_in_same_query!(warnings, rectifications);
diesel::allow_tables_to_appear_in_same_query!(rectifications, orgs);

diesel::table! {
    push_tokens (device_id) {
        device_id -> Text,
        member_id -> Text,
        provider -> Text,
        token -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    pushes (id) {
        id -> Text,
        member_id -> Text,
        org_id -> Text,
        items -> Text,
        state -> Text,
        attempts -> BigInt,
        send_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(pushes, orgs);
