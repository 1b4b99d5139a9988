package contract

import (
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoders: they must never panic,
// must classify every failure as ErrInvalid or ErrUnsupportedSchema, and
// whatever they accept must validate again after a re-encode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"eventId":"0b7f3e4e-9f43-4b4e-8a43-2f1d2b0c9a11","eventType":"invoice_history.changed","aggregateType":"invoice_history","aggregateId":"7","version":1,"occurredAt":"2023-06-07T03:56:58Z","schemaVersion":"1.0","payload":{"historyId":7,"emailStatus":"SENT","sentAt":1686110218,"senderOfficeName":"MFV-HN","destinationCode":"CUST-001","senderCustomerId":"001","senderOfficeId":"MFV-HN-01","forms":[{"fileName":"abcd.pdf","filePath":"file://sci/","size":1,"invoiceNumber":"INVC-001","issueDate":1686110218222,"totalAmount":1500,"senderFormId":1}]}}`))
	f.Add([]byte(`{"schemaVersion":"2.0"}`))
	f.Add([]byte(`{"payload":{"forms":[{"totalAmount":"1e99999"}]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupportedSchema) {
				t.Fatalf("unclassified envelope error: %v", err)
			}
			return
		}
		h, err := DecodeHistory(e.Payload)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("unclassified payload error: %v", err)
			}
			return
		}
		if err := h.Validate(); err != nil {
			t.Fatalf("accepted history fails validation: %v", err)
		}
		if _, err := e.Marshal(); err != nil {
			t.Fatalf("accepted envelope does not re-encode: %v", err)
		}
	})
}
