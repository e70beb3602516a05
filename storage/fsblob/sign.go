package fsblob

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/url"
	"strconv"
)

// signVersion starts every signed message, so a future change of what is
// signed cannot be confused with this one.
const signVersion = "parley-blob-v1"

// grant is what a URL allows, exactly as its query carries it: one method
// on one key until expires (Unix seconds). An upload grant has a size and
// no name; a download grant has a name and no size.
type grant struct {
	method      string
	key         string
	size        string
	contentType string
	name        string
	expires     string
}

// Query parameters of a URL.
const (
	paramExpires = "exp"
	paramSize    = "size"
	paramType    = "type"
	paramName    = "name"
	paramSig     = "sig"
)

// mac is the HMAC-SHA256 of g: every field length-prefixed, so no two
// grants sign the same bytes.
func (b *Blobs) mac(g grant) []byte {
	m := hmac.New(sha256.New, b.secret)
	for _, f := range [...]string{signVersion, g.method, g.key, g.size, g.contentType, g.name, g.expires} {
		writeField(m, f)
	}
	return m.Sum(nil)
}

func writeField(h hash.Hash, f string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(f)))
	h.Write(n[:])
	_, _ = io.WriteString(h, f)
}

// url is the signed URL of g.
func (b *Blobs) url(g grant) string {
	q := url.Values{}
	q.Set(paramExpires, g.expires)
	q.Set(paramType, g.contentType)
	if g.method == "PUT" {
		q.Set(paramSize, g.size)
	} else {
		q.Set(paramName, g.name)
	}
	q.Set(paramSig, hex.EncodeToString(b.mac(g)))
	return b.publicURL + MountPath + g.key + "?" + q.Encode()
}

var (
	errBadSignature = errors.New("the URL's signature is missing or wrong")
	errExpired      = errors.New("the URL has expired")
)

// verify returns the grant a request's URL carries, if the URL is one
// this server signed, unchanged and unexpired, for method.
func (b *Blobs) verify(method, key, rawQuery string) (grant, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return grant{}, errBadSignature
	}
	params := []string{paramExpires, paramType, paramSig, paramName}
	if method == "PUT" {
		params[3] = paramSize
	}
	if len(q) != len(params) {
		return grant{}, errBadSignature
	}
	for _, p := range params {
		if len(q[p]) != 1 {
			return grant{}, errBadSignature
		}
	}
	g := grant{
		method:      method,
		key:         key,
		size:        q.Get(paramSize),
		contentType: q.Get(paramType),
		name:        q.Get(paramName),
		expires:     q.Get(paramExpires),
	}
	sig, err := hex.DecodeString(q.Get(paramSig))
	if err != nil || !hmac.Equal(sig, b.mac(g)) {
		return grant{}, errBadSignature
	}
	exp, err := strconv.ParseInt(g.expires, 10, 64)
	if err != nil || b.now().Unix() > exp {
		return grant{}, errExpired
	}
	return g, nil
}
