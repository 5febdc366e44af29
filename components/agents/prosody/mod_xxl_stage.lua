-- mod_xxl_stage: the main room of an event is for hosts. Loaded on the main conference MUC
-- when `auth.mode` is jwt (jitsi-xxl renders its options).
--
-- Hosts log in with a token signed with the stack's app secret (mod_auth_token verifies it,
-- or refuses the login); viewers log in without one (allow_empty_token) only so that jicofo
-- can send them to a visitor node. This module makes that safe:
--   * every new room tells jicofo, through room metadata, that its main room is for the stage
--     group only: jicofo then redirects everyone without a host token to a visitor node from
--     the first request (ChatRoomImpl.isAllowedInMainRoom), and keeps hosts in the main room
--     even once visitors are used (isPreferredInMainRoom). mod_visitors_component admits hosts
--     of that group after visitors start (room._data.moderator_id);
--   * the room's form carries jicofo's conference presets flag, and focus gets the metadata
--     as soon as it joins: jicofo then waits for it before answering the first request
--     (ChatRoomImpl's roomMetadataLatch), so even the very first joiner is routed right;
--   * a join without a token is refused unless the session is an approved promotion (and
--     mod_visitors_component checks that approval against the room again), so the stage
--     never depends on what jicofo was told;
--   * owner (moderator) is granted to tokens whose context.user.moderator is true, and to
--     nobody else: an affiliation change that would make anyone else owner or admin is refused.

local jid = require "util.jid";
local st = require "util.stanza";

local util = module:require "util";
local is_admin = util.is_admin;
local is_healthcheck_room = util.is_healthcheck_room;

local stage_group = module:get_option_string("xxl_stage_group");
local main_domain = module:get_option_string("muc_mapper_domain_base");
-- recorders and transcribers join the main room from their own hosts, without a token
local trusted_hosts = module:get_option_set("xxl_stage_trusted_hosts", {});

if not stage_group or not main_domain then
    module:log("error", "xxl_stage_group and muc_mapper_domain_base are required; refusing every join");
end

local sessions = prosody.full_sessions;

local function is_true(value)
    return value == true or value == "true";
end

-- A session that logged in to the main host with a verified token.
local function host_session(session)
    return session ~= nil and session.auth_token ~= nil and session.host == main_domain;
end

local function moderator_session(session)
    local user = host_session(session) and session.jitsi_meet_context_user;
    return user and is_true(user.moderator) or false;
end

-- Sent to jicofo only (mod_room_metadata_component): a non-empty participants list is how
-- jicofo knows the main room needs a token. Set when focus joins (its own join comes before
-- muc-room-created) and again on creation, for rooms made any other way.
local function mark_stage(room)
    if is_healthcheck_room(room.jid) or not stage_group then
        return;
    end
    room._data.participants = { stage_group };
    room._data.moderator_id = stage_group;
end

-- A viewer whose raised hand was approved logs in again with the username the visitors
-- component granted (`customusername`); that component hands it out (pre-jitsi-authentication)
-- only for an approved promotion, so a session holding exactly that username was approved.
local function approved_viewer(session)
    return session ~= nil and session.customusername ~= nil
        and session.username == session.customusername and session.host == main_domain;
end

module:hook("muc-room-created", function(event)
    mark_stage(event.room);
end, 10);

local presets_field = {
    name = "muc#roominfo_conference_presets_service_enabled";
    type = "boolean";
    label = "Whether jicofo waits for the room metadata";
    value = true;
};
module:hook("muc-disco#info", function(event)
    table.insert(event.form, presets_field);
end);
module:hook("muc-config-form", function(event)
    table.insert(event.form, presets_field);
end);

module:hook("muc-occupant-pre-join", function(event)
    local room, occupant, session, stanza = event.room, event.occupant, event.origin, event.stanza;
    if is_healthcheck_room(room.jid) or is_admin(occupant.bare_jid) then
        return;
    end
    if session and session.type == "s2sin" then
        return; -- the visitor nodes' mirrored occupants: they live on the nodes
    end
    local host = jid.host(occupant.bare_jid);
    if trusted_hosts:contains(host) then
        return;
    end
    if stage_group and host_session(session) then
        return;
    end
    if stage_group and approved_viewer(session) then
        return; -- mod_visitors_component checks the approval for this room again
    end
    module:log("info", "refused %s in %s: no host token", stanza.attr.from, room.jid);
    session.send(st.error_reply(stanza, "auth", "not-allowed", "The stage is for hosts with a token")
        :tag("xxl-stage", { xmlns = "urn:jitsi-xxl:stage" }));
    return true;
end, 100);

module:hook("muc-occupant-joined", function(event)
    local room, occupant = event.room, event.occupant;
    if is_healthcheck_room(room.jid) then
        return;
    end
    if is_admin(occupant.bare_jid) then
        mark_stage(room);
        -- mod_room_metadata_component sends jicofo its view (with participants) on this event
        module:fire_event("room-metadata-changed", { room = room });
        return;
    end
    if moderator_session(sessions[occupant.jid]) then
        room:set_affiliation(true, occupant.bare_jid, "owner");
    end
end, 2);

module:hook("muc-pre-set-affiliation", function(event)
    local affiliation, target = event.affiliation, event.jid;
    if affiliation ~= "owner" and affiliation ~= "admin" then
        return;
    end
    if is_admin(target) or is_healthcheck_room(event.room.jid) then
        return;
    end
    for _, occupant in event.room:each_occupant() do
        if occupant.bare_jid == target then
            for real_jid in occupant:each_session() do
                if moderator_session(sessions[real_jid]) then
                    return;
                end
            end
        end
    end
    module:log("warn", "refused %s for %s in %s: no moderator token", affiliation, target, event.room.jid);
    event.allowed = false;
end, 100);
