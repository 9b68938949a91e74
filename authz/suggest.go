package authz

import (
	"github.com/keygate/keygate/internal/suggest"
	"slices"
	"strings"
)

// didYouMean returns a hint such as `; did you mean "role" or "any_role"?`
// naming the candidates closest to s, or "" when none is close. aliases,
// when not nil, maps a folded s (see fold) to the candidates it is a
// common misspelling of.
func didYouMean(s string, candidates []string, aliases func(folded string) []string) string {
	f := fold(s)
	var found []string
	if aliases != nil {
		found = aliases(f)
	}
	if len(found) == 0 {
		for _, c := range candidates {
			if fold(c) == f {
				found = append(found, c)
			}
		}
	}
	if len(found) == 0 {
		best := min(2, max(1, len(f)/2)) + 1
		for _, c := range candidates {
			switch d := suggest.Distance(f, fold(c)); {
			case d < best:
				best, found = d, append(found[:0], c)
			case d == best:
				found = append(found, c)
			}
		}
	}
	found = slices.DeleteFunc(found, func(c string) bool { return c == s })
	switch len(found) {
	case 0:
		return ""
	case 1:
		return `; did you mean "` + found[0] + `"?`
	}
	var b strings.Builder
	b.WriteString("; did you mean ")
	for i, c := range found {
		switch {
		case i == len(found)-1:
			b.WriteString(" or ")
		case i > 0:
			b.WriteString(", ")
		}
		b.WriteString(`"` + c + `"`)
	}
	b.WriteString("?")
	return b.String()
}

// fold lower-cases s and drops '_', '-' and ' ', so that anyRole,
// any-role and any_role compare equal.
func fold(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', ' ':
			return -1
		}
		return toLower(r)
	}, s)
}

func toLower(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// requirementAliases maps common misspellings of requirement keys, folded,
// to the keys meant: Spring's names among them.
func requirementAliases(f string) []string {
	switch f {
	case "roles", "hasroles":
		return []string{"role", "any_role"}
	case "hasrole", "realmrole", "realmroles":
		return []string{"role"}
	case "anyroles", "hasanyrole", "hasanyroles", "oneof":
		return []string{"any_role"}
	case "clientroles", "hasclientrole", "resourcerole", "resourceroles":
		return []string{"client_role"}
	case "scopes", "hasscope":
		return []string{"scope"}
	case "authorities", "hasauthority", "hasanyauthority":
		return []string{"authority"}
	case "claims", "hasclaim":
		return []string{"claim"}
	case "permit", "permitted", "public", "anonymous", "open", "allow", "allowall", "anyone":
		return []string{"permit_all"}
	case "denyall", "denied", "none", "nobody", "forbid", "forbidden", "reject":
		return []string{"deny"}
	case "auth", "authenticate", "isauthenticated", "loggedin", "authn", "fullyauthenticated":
		return []string{"authenticated"}
	case "allof", "and", "every", "both":
		return []string{"all"}
	case "anyof", "or", "either":
		return []string{"any"}
	}
	return nil
}

// ruleAliases maps common misspellings of rule keys, folded, to the keys
// meant.
func ruleAliases(f string) []string {
	switch f {
	case "method", "verb", "verbs", "httpmethod", "httpmethods":
		return []string{"methods"}
	case "paths", "pattern", "patterns", "match", "matcher", "matchers", "requestmatchers", "url", "uri", "route":
		return []string{"path"}
	case "requires", "requirement", "access", "auth", "allow", "when":
		return []string{"require"}
	case "strictslash", "strictslashes", "stricttrailingslashes", "trailingslash", "exactslash":
		return []string{"strict_trailing_slash"}
	}
	return nil
}

// rulesAliases maps common misspellings of the keys of a Rules document,
// folded, to the keys meant.
func rulesAliases(f string) []string {
	switch f {
	case "defaults", "fallback", "otherwise", "else", "anyrequest":
		return []string{"default"}
	case "rule", "routes", "paths", "matchers", "requestmatchers":
		return []string{"rules"}
	case "caseinsensitive", "ignorecase", "caseinsensitivepath", "pathsignorecase", "insensitivepaths":
		return []string{"case_insensitive_paths"}
	}
	return nil
}

// claimAliases maps common misspellings of the keys of a claim
// requirement, folded, to the keys meant.
func claimAliases(f string) []string {
	switch f {
	case "value", "is", "eq", "equal", "equalto":
		return []string{"equals"}
	case "in", "has", "includes", "include", "contain", "holds":
		return []string{"contains"}
	case "claim", "key", "field":
		return []string{"name"}
	}
	return nil
}

// clientRoleAliases maps common misspellings of the keys of a client_role
// requirement, folded, to the keys meant.
func clientRoleAliases(f string) []string {
	switch f {
	case "clientid", "resource", "app", "audience":
		return []string{"client"}
	case "roles", "name":
		return []string{"role"}
	}
	return nil
}
