// jitsi-xxl: overrides of the packaged config.js for the visitors design.
// The bootstrap appends this file to /etc/jitsi/meet/live.example.org-config.js between markers.
// XMPP over WebSocket: the client adds ?vnode=vN when jicofo redirects it to a visitor node.
config.websocket = "wss://live.example.org/xmpp-websocket";
config.bosh = "https://live.example.org/http-bind";
config.hosts.domain = "live.example.org";
config.hosts.muc = "conference.live.example.org";
// Promotion approved by a moderator goes through jicofo's HTTP conference request.
config.conferenceRequestUrl = "https://live.example.org/conference-request/v1";
