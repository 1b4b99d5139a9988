package contract

import (
	"errors"
	"strings"
	"testing"
)

// Text limits count characters (Unicode code points), as PostgreSQL's
// char_length does on the SQL path: a name in any script is accepted up to
// the limit and refused past it, on every path alike.
func TestTextLimitsCountCharacters(t *testing.T) {
	for _, script := range []string{"x", "ệ", "日", "𝄞"} { // 1, 3, 3 and 4 bytes in UTF-8
		t.Run(script, func(t *testing.T) {
			h := validHistory()
			h.SenderOfficeName = strings.Repeat(script, MaxTextLen)
			h.Forms[0].FilePath = strings.Repeat(script, MaxPathLen)
			if err := h.Validate(); err != nil {
				t.Fatalf("%d characters of %q refused: %v", MaxTextLen, script, err)
			}
			h.SenderOfficeName += script
			h.Forms[0].FilePath += script
			err := h.Validate()
			for _, field := range []string{"senderOfficeName", "forms[0].filePath"} {
				if err == nil || !strings.Contains(err.Error(), field+": longer than") {
					t.Errorf("one character over the limit: %v, want %s refused", err, field)
				}
			}
		})
	}
}

// PostgreSQL text cannot hold NUL, and text must be valid UTF-8: both are
// refused by the contract, naming the field, instead of failing later in
// the database (a 500) or being replaced by U+FFFD.
func TestTextRefusesNULAndInvalidUTF8(t *testing.T) {
	for _, tc := range []struct {
		field   string
		mutate  func(*History)
		problem string
	}{
		{"senderOfficeName", func(h *History) { h.SenderOfficeName = "MFV\x00HN" }, "must not contain NUL"},
		{"destinationCode", func(h *History) { h.DestinationCode = "CUST-\xff" }, "is not valid UTF-8"},
		{"forms[0].filePath", func(h *History) { h.Forms[0].FilePath = "\x00" }, "must not contain NUL"},
		{"forms[0].fileName", func(h *History) { h.Forms[0].FileName = "a\xc3.pdf" }, "is not valid UTF-8"},
		{"forms[0].invoiceNumber", func(h *History) { h.Forms[0].InvoiceNumber = "\x00" }, "must not contain NUL"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			h := validHistory()
			tc.mutate(&h)
			err := h.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field+": "+tc.problem) {
				t.Fatalf("Validate = %v, want %s: %s", err, tc.field, tc.problem)
			}
		})
	}
}

// JSON decoding replaces invalid UTF-8 with U+FFFD without a word: the
// decoder must refuse it instead, naming the field.
func TestDecodeHistoryRefusesInvalidUTF8(t *testing.T) {
	b := []byte(`{"historyId":7,"emailStatus":"SENT","sentAt":1686110218,"senderOfficeName":"MFV-HN",` +
		`"destinationCode":"CUST-001","senderCustomerId":"001","senderOfficeId":"MFV-HN-01","forms":[` +
		`{"fileName":"a.pdf","filePath":"","size":1,"invoiceNumber":"INVC-001","issueDate":1686110218222,"totalAmount":1,"senderFormId":1},` +
		`{"fileName":"b` + "\xff" + `.pdf","filePath":"","size":1,"invoiceNumber":"INVC-002","issueDate":1686110218222,"totalAmount":1,"senderFormId":2}]}`)
	_, err := DecodeHistory(b)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "forms[1].fileName: is not valid UTF-8") {
		t.Fatalf("DecodeHistory = %v, want forms[1].fileName: is not valid UTF-8", err)
	}
}

func TestInvalidUTF8Path(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":"ok","b":"` + "\xff" + `"}`:                      "b",
		`{"a":[1,{"c":"x"},{"d":["y","` + "\xe2\x82" + `"]}]}`: "a[2].d[1]",
		`{"` + "\xff" + `":1}`:                                 "\ufffd",
		`["` + "\xc0" + `"]`:                                   "[0]",
	} {
		if got, ok := InvalidUTF8Path([]byte(in)); !ok || got != want {
			t.Errorf("InvalidUTF8Path(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if got, ok := InvalidUTF8Path([]byte(`{"a":"日本"}`)); ok {
		t.Errorf("valid UTF-8 reported at %q", got)
	}
}

// A size up to the largest 64-bit integer is a size; dates are compared as
// integers, so no value overflows into a plausible time.
func TestIntegerEdges(t *testing.T) {
	h := validHistory()
	h.Forms[0].Size = 1e18
	if err := h.Validate(); err != nil {
		t.Fatalf("size 10^18: %v", err)
	}
	for _, v := range []int64{-1 << 63, 1<<63 - 1, 631151999, 7258118401} {
		h := validHistory()
		h.SentAt, h.Forms[0].IssueDate = v, v
		err := h.Validate()
		if err == nil || !strings.Contains(err.Error(), "sentAt: ") || !strings.Contains(err.Error(), "forms[0].issueDate: ") {
			t.Errorf("sentAt and issueDate %d: %v, want both refused", v, err)
		}
	}
	h = validHistory()
	h.SentAt, h.Forms[0].IssueDate = 631152000, 7258118400000
	if err := h.Validate(); err != nil {
		t.Fatalf("the first and last plausible instants: %v", err)
	}
}

// A deletion needs only the history id: an ERROR event whose other fields
// no longer pass validation (rows edited outside the API) must still apply.
func TestDecodeForApplyAlwaysAcceptsADeletion(t *testing.T) {
	for name, payload := range map[string]string{
		"zero forms":             `{"historyId":9,"emailStatus":"ERROR","sentAt":1686110218,"forms":[]}`,
		"date before 1990":       `{"historyId":9,"emailStatus":"ERROR","sentAt":1,"forms":[{"issueDate":5}]}`,
		"300-character fileName": `{"historyId":9,"emailStatus":"ERROR","forms":[{"fileName":"` + strings.Repeat("f", 300) + `"}]}`,
		"invalid UTF-8 and NUL":  `{"historyId":9,"emailStatus":"ERROR","senderOfficeName":"` + "\xff" + `","destinationCode":"\u0000"}`,
		"mistyped other fields":  `{"historyId":9,"emailStatus":"ERROR","sentAt":"yesterday","forms":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			h, err := DecodeForApply([]byte(payload))
			if err != nil {
				t.Fatalf("DecodeForApply = %v, want a deletion", err)
			}
			if h.HistoryID != 9 || h.EmailStatus != StatusError {
				t.Fatalf("DecodeForApply = %+v, want history 9 with status ERROR", h)
			}
		})
	}
	for name, tc := range map[string]struct{ payload, field string }{
		"ERROR without an id":     {`{"emailStatus":"ERROR"}`, "historyId"},
		"ERROR with id 0":         {`{"historyId":0,"emailStatus":"ERROR"}`, "historyId"},
		"SENT with zero forms":    {`{"historyId":9,"emailStatus":"SENT","sentAt":1686110218,"forms":[]}`, "forms"},
		"lower-case error":        {`{"historyId":9,"emailStatus":"error"}`, "emailStatus"},
		"not an object":           {`[]`, "history payload"},
		"historyId not a integer": {`{"historyId":"9","emailStatus":"ERROR"}`, "history payload"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeForApply([]byte(tc.payload))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("DecodeForApply = %v, want ErrInvalid naming %s", err, tc.field)
			}
		})
	}
	valid, err := DecodeForApply([]byte(`{"historyId":7,"emailStatus":"SENT","sentAt":1686110218,"senderOfficeName":"MFV-HN",` +
		`"destinationCode":"CUST-001","senderCustomerId":"001","senderOfficeId":"MFV-HN-01","forms":[{"fileName":"a.pdf",` +
		`"size":1,"invoiceNumber":"INVC-001","issueDate":1686110218222,"totalAmount":1,"senderFormId":1}]}`))
	if err != nil || len(valid.Forms) != 1 || valid.SenderOfficeName != "MFV-HN" {
		t.Fatalf("DecodeForApply of a valid SENT history = %+v, %v", valid, err)
	}
}
