package contract

// ValidateDraft checks a history that is about to be recorded, before the
// database has assigned its id and its forms' ids: every check of Validate
// except historyId and forms[].senderFormId, whose values are ignored. An
// empty EmailStatus is set to StatusSent on h, since every history is
// recorded as sent and only a later job sets its final status. The error
// names every field at fault, like Validate's, and matches ErrInvalid.
func (h *History) ValidateDraft() error {
	if h.EmailStatus == "" {
		h.EmailStatus = StatusSent
	}
	// Run Validate on a copy whose database-assigned ids hold placeholders,
	// so the two validations can never drift apart.
	d := *h
	d.HistoryID = 1
	d.Forms = make([]Form, len(h.Forms))
	for i, f := range h.Forms {
		f.SenderFormID = int64(i) + 1
		d.Forms[i] = f
	}
	return d.Validate()
}
