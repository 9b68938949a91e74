package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener holds at most cap(sem) connections open at once. When
// they are all taken, Accept makes room before it waits: it closes the
// connections that sit idle between two requests of a keep-alive client
// (their clients reconnect, as HTTP allows), or else the oldest
// connection that has not finished its first request within minNewAge (a
// client that sends nothing, or stalls in the TLS handshake). While it
// waits, every connection that turns idle is closed at once, and it looks
// again every evictEvery as connections age. Further connections wait in
// the kernel's accept queue (and past its backlog are refused by the
// kernel) instead of costing a goroutine, a buffer and a file handle
// each. So neither a flood of idle keep-alive connections nor one of
// silent connections holds every slot for longer than minNewAge; a flood
// from many addresses still competes with real clients for the kernel's
// queue, which only a front proxy or the network can stop.
//
// It does what golang.org/x/net/netutil.LimitListener does, plus the
// eviction that needs the server's connection states; keygate has its
// own lines rather than a module dependency for a part of them.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	waiting   atomic.Int32 // Accepts waiting for a slot
	evict     bool         // whether a full listener makes room (see trackState)
	now       func() time.Time

	mu    sync.Mutex // guards conns; taken on accept, close and eviction only
	conns map[*limitConn]struct{}
}

// minNewAge is how long a connection may take over its first request
// (its TLS handshake included) before a full listener may close it to
// make room; evictEvery is how often a waiting Accept looks again.
const (
	minNewAge  = time.Second
	evictEvery = 250 * time.Millisecond
)

// newLimitListener limits l to n connections; n <= 0 returns l as is.
// With evict, a full listener makes room by closing idle and silent
// connections; that needs an http.Server whose ConnState is trackState,
// which reports the states. Without it (a gRPC server, which reports no
// states and whose one connection per client carries every call), a full
// listener only waits.
func newLimitListener(l net.Listener, n int, evict bool) net.Listener {
	if n <= 0 {
		return l
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{}),
		conns: make(map[*limitConn]struct{}), evict: evict, now: time.Now}
}

// Accept waits for a free slot, making room as limitListener says, then
// for a connection. It returns net.ErrClosed once the listener is
// closed, also while waiting.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		if err := l.waitForSlot(); err != nil {
			return nil, err
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	lc := &limitConn{Conn: c, l: l, born: l.now()}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

// waitForSlot takes a slot of a full listener.
func (l *limitListener) waitForSlot() error {
	// Announce the wait before looking for idle connections: one that
	// turns idle after the scan sees the announcement.
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	tick := time.NewTicker(evictEvery)
	defer tick.Stop()
	for {
		if l.evict {
			l.makeRoom()
		}
		select {
		case l.sem <- struct{}{}:
			return nil
		case <-l.done:
			return net.ErrClosed
		case <-tick.C:
		}
	}
}

// makeRoom closes every idle connection or, when none is idle, the
// oldest one still on its first request after minNewAge.
func (l *limitListener) makeRoom() {
	cutoff := l.now().Add(-minNewAge)
	l.mu.Lock()
	var (
		victims []*limitConn
		oldest  *limitConn
	)
	for c := range l.conns {
		switch http.ConnState(c.state.Load()) {
		case http.StateIdle:
			victims = append(victims, c)
		case http.StateNew:
			if c.born.Before(cutoff) && (oldest == nil || c.born.Before(oldest.born)) {
				oldest = c
			}
		}
	}
	l.mu.Unlock()
	if len(victims) == 0 && oldest != nil {
		victims = append(victims, oldest)
	}
	for _, c := range victims {
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
	l     *limitListener
	born  time.Time
	state atomic.Int32 // an http.ConnState: StateNew (0) until the server reports
	once  sync.Once
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

// trackState is an http.Server ConnState hook for connections from a
// limitListener: it records their state for makeRoom, and closes one
// that turns idle while an Accept waits for a slot. It costs an atomic
// store per state change; the request path takes no lock.
func trackState(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	lc.state.Store(int32(state))
	if state == http.StateIdle && lc.l.waiting.Load() > 0 {
		lc.Close()
	}
}
