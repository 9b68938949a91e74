package server

import (
	"net"
	"sync"
)

// limitListener holds at most cap(sem) connections open at once. When
// they are all taken, Accept waits for one to close before it accepts
// the next, so further connections wait in the kernel's accept queue
// (and past its backlog are refused by the kernel) instead of costing a
// goroutine, a buffer and a file handle each.
//
// It does what golang.org/x/net/netutil.LimitListener does; keygate has
// its own dozen lines rather than a new module dependency for them.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// newLimitListener limits l to n connections; n <= 0 returns l as is.
func newLimitListener(l net.Listener, n int) net.Listener {
	if n <= 0 {
		return l
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection. It returns
// net.ErrClosed once the listener is closed, also while waiting.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
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
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
