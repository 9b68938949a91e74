// Package seamtest holds the differential test of keygate's request seam
// (issue #7): generated request targets and headers, sent as raw bytes
// through an in-process keygate server (proxy mode and forward-auth) to a
// recording upstream that reads requests as permissive frameworks do. For
// every request that reaches the upstream, the route it served must be
// one the rules allow the caller. The package has no code of its own; it
// lives under cmd/keygate so that its test can import the server package.
package seamtest
