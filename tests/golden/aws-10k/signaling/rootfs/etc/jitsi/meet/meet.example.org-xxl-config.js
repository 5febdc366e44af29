// jitsi-xxl: overrides of the packaged config.js for the visitors design.
// The bootstrap appends this file to /etc/jitsi/meet/meet.example.org-config.js between markers.
// XMPP over WebSocket: the client adds ?vnode=vN when jicofo redirects it to a visitor node.
config.websocket = "wss://meet.example.org/xmpp-websocket";
config.bosh = "https://meet.example.org/http-bind";
config.hosts.domain = "meet.example.org";
config.hosts.muc = "conference.meet.example.org";
// Promotion approved by a moderator goes through jicofo's HTTP conference request.
config.conferenceRequestUrl = "https://meet.example.org/conference-request/v1";
