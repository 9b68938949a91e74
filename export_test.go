package keygate

// CacheLen reports how many tokens v's cache holds.
func CacheLen(v *Verifier) int { return v.cache.stats().Size }
