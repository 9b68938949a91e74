//go:build goexperiment.jsonv2

package keygate

import jsonv2 "encoding/json/v2"

// unmarshalV2 is encoding/json/v2's Unmarshal, for BenchmarkDecodeClaims
// when Go is built with GOEXPERIMENT=jsonv2.
func unmarshalV2() func([]byte, any) error {
	return func(b []byte, v any) error { return jsonv2.Unmarshal(b, v) }
}
