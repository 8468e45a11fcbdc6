// Package assignment signs and verifies the assignment cookie: a value that
// records which experiment, run, variant, segment and allocation epoch
// served a customer, with an HMAC that only Rapport (and apps given the key)
// can compute, so a customer cannot claim another variant.
//
// The value is the payload and its tag, joined by "~" (a character no
// Kubernetes name may hold, and a valid cookie octet):
//
//	1~<namespace>~<experiment>~<run>~<segment>~<variant>~<epoch>~<tag>
//
// where tag is the first 16 bytes of HMAC-SHA256(key, "rapport-assignment\x00"
// + payload), in unpadded base64url, and payload is everything before the
// last "~". The key is 32 random bytes in the experiment's Secret (see
// SecretName), created by the controller and owned by the experiment.
//
// cookie.go is pure (signing, parsing, the Set-Cookie value); keys.go reads
// and creates the key Secrets. The package never decides whether an answer
// counts: the collector checks the run, variant and segment against the
// experiment.
package assignment
