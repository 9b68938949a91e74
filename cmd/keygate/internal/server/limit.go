package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// limitListener holds at most cap(sem) connections open at once. When
// they are all taken, Accept first closes the connections that sit idle
// between two requests of a keep-alive client (their clients reconnect,
// as HTTP allows), and while it waits, every connection that turns idle
// is closed at once. Further connections wait in the kernel's accept
// queue (and past its backlog are refused by the kernel) instead of
// costing a goroutine, a buffer and a file handle each. So a flood of
// idle keep-alive connections cannot lock out a new client; connections
// that send nothing are bounded by the header read timeout.
//
// It does what golang.org/x/net/netutil.LimitListener does, plus the
// idle eviction that needs the server's connection states; keygate has
// its own lines rather than a module dependency for a part of them.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	waiting   atomic.Int32 // Accepts waiting for a slot

	mu    sync.Mutex // guards conns; taken on accept and close only
	conns map[*limitConn]struct{}
}

// newLimitListener limits l to n connections; n <= 0 returns l as is.
func newLimitListener(l net.Listener, n int) net.Listener {
	if n <= 0 {
		return l
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{}), conns: make(map[*limitConn]struct{})}
}

// Accept waits for a free slot, then for a connection. It returns
// net.ErrClosed once the listener is closed, also while waiting.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		// Full. Announce the wait before looking for idle connections:
		// one that turns idle after the scan sees the announcement.
		l.waiting.Add(1)
		l.closeIdle()
		select {
		case l.sem <- struct{}{}:
			l.waiting.Add(-1)
		case <-l.done:
			l.waiting.Add(-1)
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	lc := &limitConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

// closeIdle closes every connection that is idle now.
func (l *limitListener) closeIdle() {
	l.mu.Lock()
	var idle []*limitConn
	for c := range l.conns {
		if c.idle.Load() {
			idle = append(idle, c)
		}
	}
	l.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// Close closes the listener and wakes a waiting Accept.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back on the first Close, also when the
// connection was hijacked (WebSocket) and is closed by the proxy.
type limitConn struct {
	net.Conn
	l    *limitListener
	idle atomic.Bool
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}

// trackIdle is an http.Server ConnState hook for connections from a
// limitListener: it marks them idle between requests, and closes one
// that turns idle while an Accept waits for a slot. It costs an atomic
// store per state change; the request path takes no lock.
func trackIdle(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	idle := state == http.StateIdle
	lc.idle.Store(idle)
	if idle && lc.l.waiting.Load() > 0 {
		lc.Close()
	}
}
