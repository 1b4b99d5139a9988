package contract

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// InvalidUTF8Path returns the path (e.g. "forms[1].fileName") of the first
// string, key or value, of the JSON document b whose text is not valid
// UTF-8, and true; "" and false when b is valid UTF-8. encoding/json
// silently replaces such bytes with U+FFFD, so callers that must refuse
// them ask here first, naming the field. A document that is not JSON, or
// whose bad bytes lie outside strings, yields "" and true: the decoder then
// reports it.
func InvalidUTF8Path(b []byte) (string, bool) {
	if utf8.Valid(b) {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var w walker
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return "", true
		}
		if s, isString := tok.(string); isString && !utf8.Valid(b[start:dec.InputOffset()]) {
			if w.expectKey() {
				w.key(s)
			}
			return w.path(), true
		}
		w.step(tok)
	}
}

// walker follows json.Decoder tokens and knows the path of the next value.
type walker struct {
	frames []frame
}

type frame struct {
	array  bool
	index  int    // in an array: the index of the next element
	name   string // in an object: the key of the value being read
	hasKey bool   // in an object: the key was read, its value is next
}

func (w *walker) expectKey() bool {
	n := len(w.frames)
	return n > 0 && !w.frames[n-1].array && !w.frames[n-1].hasKey
}

func (w *walker) key(s string) {
	f := &w.frames[len(w.frames)-1]
	f.name, f.hasKey = s, true
}

// step consumes one token.
func (w *walker) step(tok json.Token) {
	if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
		w.frames = w.frames[:len(w.frames)-1]
		w.valueDone()
		return
	}
	if s, ok := tok.(string); ok && w.expectKey() {
		w.key(s)
		return
	}
	switch tok {
	case json.Delim('{'):
		w.frames = append(w.frames, frame{})
	case json.Delim('['):
		w.frames = append(w.frames, frame{array: true})
	default:
		w.valueDone()
	}
}

// valueDone moves past the value just read.
func (w *walker) valueDone() {
	if n := len(w.frames); n > 0 {
		if f := &w.frames[n-1]; f.array {
			f.index++
		} else {
			f.hasKey = false
		}
	}
}

func (w *walker) path() string {
	var b []byte
	for _, f := range w.frames {
		if f.array {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(f.index), 10)
			b = append(b, ']')
			continue
		}
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, f.name...)
	}
	return string(b)
}
