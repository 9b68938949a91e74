package authz

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// segKind is what one segment of a path pattern matches.
type segKind uint8

const (
	segLiteral segKind = iota // exactly its text
	segWild                   // {name}: one non-empty segment
	segRest                   // {name...} or **: every remaining segment, none included
)

type segment struct {
	kind segKind
	lit  string
}

// pattern is a compiled path pattern: the segments after the leading
// slash. The pattern "/" is one empty literal segment.
type pattern struct {
	segs []segment
	// slash records that the pattern was written with a trailing slash,
	// as in /x/. It counts only when strict is set.
	slash bool
	// strict makes a trailing slash significant: /x matches /x only, /x/
	// matches /x/ only. Patterns ending in a rest segment ignore it.
	strict bool
}

// match reports whether path, which must start with "/", matches. When
// fold is set, literal segments compare without regard to case as the
// most lenient upstream does (see [equalFold]).
// Unless p is strict, one trailing slash after the last segment is
// ignored: /x and /orders/{id} match /x/ and /orders/7/. match walks path
// in place and does not allocate.
func (p *pattern) match(path string, fold bool) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	rest, more := path[1:], true
	for _, s := range p.segs {
		if s.kind == segRest {
			return true
		}
		if !more {
			return false
		}
		var seg string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			seg, rest, more = rest, "", false
		}
		switch s.kind {
		case segLiteral:
			if seg != s.lit && (!fold || !equalFold(seg, s.lit)) {
				return false
			}
		case segWild:
			if seg == "" {
				return false
			}
		}
	}
	// Every segment matched. What is left of path is nothing (/x), or,
	// after a trailing slash, the empty string (/x/). The root pattern has
	// no segment a slash could trail.
	trailing := more
	if trailing && (rest != "" || len(p.segs) == 1 && p.segs[0].kind == segLiteral && p.segs[0].lit == "") {
		return false
	}
	if p.strict {
		return trailing == p.slash
	}
	return true
}

// parsePattern compiles a path pattern. Its errors do not name the
// pattern; the caller does.
func parsePattern(s string) (pattern, error) {
	if s == "" {
		return pattern{}, errors.New("is empty")
	}
	if s[0] != '/' {
		if m, rest, ok := strings.Cut(s, " "); ok && isLetters(m) {
			return pattern{}, fmt.Errorf("must start with \"/\"; put the method %q in the rule's methods and keep %q as the path", m, strings.TrimSpace(rest))
		}
		return pattern{}, errors.New("must start with \"/\"")
	}
	if s == "/" {
		return pattern{segs: []segment{{kind: segLiteral}}}, nil
	}
	// A trailing slash is accepted and, unless the rule is strict, means
	// nothing: /x/ is /x.
	body, slash := strings.CutSuffix(s, "/")
	parts := strings.Split(body[1:], "/")
	p := pattern{segs: make([]segment, 0, len(parts)), slash: slash}
	var names []string
	for i, seg := range parts {
		last := i == len(parts)-1
		switch {
		case seg == "":
			return pattern{}, errors.New("has an empty segment (\"//\"), which no cleaned path holds")
		case seg == "." || seg == "..":
			return pattern{}, fmt.Errorf("has a %q segment, which no cleaned path holds", seg)
		case seg == "**":
			if !last {
				return pattern{}, errors.New("has \"**\" before its last segment; use {name} for one segment")
			}
			p.segs = append(p.segs, segment{kind: segRest})
		case strings.Contains(seg, "*"):
			return pattern{}, fmt.Errorf("has %q in segment %q; use {name} for one segment, or \"**\" as the last segment for everything below", "*", seg)
		case strings.HasPrefix(seg, "{"):
			if !strings.HasSuffix(seg, "}") {
				if strings.Contains(seg, "}") {
					return pattern{}, fmt.Errorf("has segment %q; a wildcard must be the whole segment", seg)
				}
				return pattern{}, fmt.Errorf("has an unclosed \"{\" in segment %q", seg)
			}
			name := seg[1 : len(seg)-1]
			kind := segWild
			if n, ok := strings.CutSuffix(name, "..."); ok {
				if !last {
					return pattern{}, fmt.Errorf("has %q before its last segment; {name...} matches the rest of the path", seg)
				}
				name, kind = n, segRest
			}
			switch {
			case name == "":
				return pattern{}, fmt.Errorf("has a wildcard with no name, %q; name it as in {id}", seg)
			case name == "$":
				return pattern{}, errors.New("has {$}, which is not needed: a path without ** or {name...} matches exactly")
			case !isIdent(name):
				return pattern{}, fmt.Errorf("has a wildcard named %q; use letters, digits and _", name)
			}
			for _, n := range names {
				if n == name {
					return pattern{}, fmt.Errorf("names the wildcard %q twice", name)
				}
			}
			names = append(names, name)
			p.segs = append(p.segs, segment{kind: kind})
		case strings.ContainsAny(seg, "{}"):
			return pattern{}, fmt.Errorf("has segment %q; a wildcard must be the whole segment", seg)
		default:
			p.segs = append(p.segs, segment{kind: segLiteral, lit: seg})
		}
	}
	return p, nil
}

// isIdent reports whether s is a Go identifier, as ServeMux wants of a
// wildcard name.
func isIdent(s string) bool {
	for i, c := range s {
		if c != '_' && !unicode.IsLetter(c) && (i == 0 || !unicode.IsDigit(c)) {
			return false
		}
	}
	return s != ""
}

func isLetter(c rune) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isLetters(s string) bool {
	for _, c := range s {
		if !isLetter(c) {
			return false
		}
	}
	return s != ""
}

// equalFold reports whether a and b are equal without regard to case,
// under any of the foldings case-insensitive upstreams use: Unicode
// simple case folding (strings.EqualFold: .NET's OrdinalIgnoreCase on
// most letters, Python's casefold on most), and Java's
// String.equalsIgnoreCase, which compares each character upper-cased,
// then lower-cased, and so also pairs the dotless ı (U+0131) with i.
// Being lenient is the safe side: a path that some upstream folds to a
// protected route must match that route's rule. It does not allocate.
func equalFold(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb && unicode.ToLower(unicode.ToUpper(ra)) != unicode.ToLower(unicode.ToUpper(rb)) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b == ""
}
