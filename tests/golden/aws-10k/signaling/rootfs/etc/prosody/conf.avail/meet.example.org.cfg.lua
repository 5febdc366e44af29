



muc_mapper_domain_base = "meet.example.org"
component_admins_as_room_owners = true



external_service_secret = "@@XXL_SECRET_TURN_SECRET@@"

external_service_ttl = 28800
external_services = {
    { type = "stun", host = "meet.example.org", port = 3478, transport = "udp" };
    { type = "turn", host = "meet.example.org", port = 3478, transport = "udp", secret = true, algorithm = "turn" };
    { type = "turns", host = "meet.example.org", port = 443, transport = "tcp", secret = true, algorithm = "turn" };
}

consider_bosh_secure = true
consider_websocket_secure = true

smacks_max_unacked_stanzas = 5
smacks_hibernation_time = 60
smacks_max_old_sessions = 1

VirtualHost "meet.example.org"

    authentication = "token"
    app_id = "jitsi-xxl"
    app_secret = "@@XXL_SECRET_JWT_APP_SECRET@@"
    allow_empty_token = true
    ssl = { key = "/etc/prosody/certs/jitsi-xxl.key"; certificate = "/etc/prosody/certs/jitsi-xxl.crt" }
    modules_enabled = {
        "bosh"; "websocket"; "smacks"; "ping"; "external_services"; "features_identity";
        "conference_duration"; "muc_lobby_rooms"; "muc_breakout_rooms";
        "visitors";
    }
    c2s_require_encryption = false

    allow_anonymous_s2s = true
    lobby_muc = "lobby.meet.example.org"
    breakout_rooms_muc = "breakout.meet.example.org"
    main_muc = "conference.meet.example.org"

    visitors_ignore_list = { "recorder.meet.example.org" }

Component "conference.meet.example.org" "muc"
    restrict_room_creation = true
    storage = "memory"
    modules_enabled = {
        "muc_hide_all"; "muc_meeting_id"; "muc_domain_mapper"; "muc_rate_limit";
        "muc_password_whitelist";
        "token_verification"; "xxl_stage";

        "s2s_bidi"; "s2sout_override"; "s2s_whitelist";
    }
    admins = { "focus@auth.meet.example.org" }

    token_verification_require_token_for_moderation = true
    xxl_stage_group = "jitsi-xxl-stage"
    xxl_stage_trusted_hosts = { "recorder.meet.example.org" }
    muc_password_whitelist = { "focus@auth.meet.example.org" }
    muc_room_locking = false
    muc_room_default_public_jids = true

Component "breakout.meet.example.org" "muc"
    restrict_room_creation = true
    storage = "memory"

    modules_enabled = { "muc_hide_all"; "muc_meeting_id"; "muc_domain_mapper"; "muc_rate_limit" }
    admins = { "focus@auth.meet.example.org" }
    muc_room_locking = false
    muc_room_default_public_jids = true




Component "internal.auth.meet.example.org" "muc"
    storage = "memory"
    restrict_room_creation = true
    modules_enabled = { "muc_hide_all"; "ping"; "muc_filter_access" }
    muc_filter_whitelist = { "auth.meet.example.org" }
    admins = { "focus@auth.meet.example.org"; "jvb@auth.meet.example.org" }
    muc_room_locking = false
    muc_room_default_public_jids = true

VirtualHost "auth.meet.example.org"
    ssl = { key = "/etc/prosody/certs/jitsi-xxl.key"; certificate = "/etc/prosody/certs/jitsi-xxl.crt" }
    modules_enabled = { "limits_exception"; "smacks" }
    authentication = "internal_hashed"
    smacks_hibernation_time = 15

Component "focus.meet.example.org" "client_proxy"
    target_address = "focus@auth.meet.example.org"

Component "speakerstats.meet.example.org" "speakerstats_component"
    muc_component = "conference.meet.example.org"

Component "endconference.meet.example.org" "end_conference"
    muc_component = "conference.meet.example.org"

Component "avmoderation.meet.example.org" "av_moderation_component"
    muc_component = "conference.meet.example.org"

Component "lobby.meet.example.org" "muc"
    storage = "memory"
    restrict_room_creation = true
    modules_enabled = { "muc_hide_all"; "muc_rate_limit" }
    muc_room_locking = false
    muc_room_default_public_jids = true

Component "metadata.meet.example.org" "room_metadata_component"
    muc_component = "conference.meet.example.org"
    breakout_rooms_component = "breakout.meet.example.org"

Component "polls.meet.example.org" "polls_component"
    modules_enabled = { "s2s_bidi"; "s2sout_override"; "s2s_whitelist" }


Component "visitors.meet.example.org" "visitors_component"
    auto_allow_visitor_promotion = false
    admins = { "focus@auth.meet.example.org" }
    modules_enabled = { "s2s_bidi"; "s2sout_override"; "s2s_whitelist" }
