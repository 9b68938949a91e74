// Package bench compares keygate with other Go JWT verifiers. It holds
// only tests and benchmarks; see README.md.
package bench
