package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/sender/history"
)

// requestError is a request refused before it reaches the database.
type requestError struct {
	status int
	msg    string
	fields []history.FieldProblem
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string, fields ...history.FieldProblem) *requestError {
	return &requestError{status: http.StatusBadRequest, msg: msg, fields: fields}
}

// historyBody is the body of POST /v1/histories: the event shape without
// historyId, which the database assigns. Forms are decoded one by one so an
// error names the form's index.
type historyBody struct {
	EmailStatus      string            `json:"emailStatus"`
	SentAt           int64             `json:"sentAt"`
	SenderOfficeName string            `json:"senderOfficeName"`
	DestinationCode  string            `json:"destinationCode"`
	SenderCustomerID string            `json:"senderCustomerId"`
	SenderOfficeID   string            `json:"senderOfficeId"`
	Forms            []json.RawMessage `json:"forms"`
}

// formBody is one form of historyBody. SenderFormID is accepted, since it
// is part of the event shape, and ignored: the database assigns form ids.
type formBody struct {
	FileName      string          `json:"fileName"`
	FilePath      string          `json:"filePath"`
	Size          int64           `json:"size"`
	InvoiceNumber string          `json:"invoiceNumber"`
	IssueDate     int64           `json:"issueDate"`
	TotalAmount   json.RawMessage `json:"totalAmount"`
	SenderFormID  *int64          `json:"senderFormId"`
}

// statusBody is the body of PUT /v1/histories/{historyId}/status.
type statusBody struct {
	EmailStatus *string `json:"emailStatus"`
}

func decodeHistory(w http.ResponseWriter, r *http.Request, limit int64) (contract.History, error) {
	data, err := readBody(w, r, limit)
	if err != nil {
		return contract.History{}, err
	}
	var b historyBody
	if err := decodeStrict(data, &b, ""); err != nil {
		return contract.History{}, err
	}
	h := contract.History{
		EmailStatus: b.EmailStatus, SentAt: b.SentAt, SenderOfficeName: b.SenderOfficeName,
		DestinationCode: b.DestinationCode, SenderCustomerID: b.SenderCustomerID, SenderOfficeID: b.SenderOfficeID,
	}
	for i, raw := range b.Forms {
		at := fmt.Sprintf("forms[%d]", i)
		var f formBody
		if err := decodeStrict(raw, &f, at); err != nil {
			return contract.History{}, err
		}
		amount, err := jsonNumber(f.TotalAmount, at+".totalAmount")
		if err != nil {
			return contract.History{}, err
		}
		h.Forms = append(h.Forms, contract.Form{
			FileName: f.FileName, FilePath: f.FilePath, Size: f.Size, InvoiceNumber: f.InvoiceNumber,
			IssueDate: f.IssueDate, TotalAmount: amount,
		})
	}
	return h, nil
}

func decodeStatus(w http.ResponseWriter, r *http.Request, limit int64) (string, error) {
	data, err := readBody(w, r, limit)
	if err != nil {
		return "", err
	}
	var b statusBody
	if err := decodeStrict(data, &b, ""); err != nil {
		return "", err
	}
	if b.EmailStatus == nil {
		return "", invalidField("emailStatus", fmt.Sprintf("is required: one of %v", contract.Statuses))
	}
	return *b.EmailStatus, nil
}

// jsonNumber keeps an amount's exact decimal text, refusing anything but a
// JSON number (a quoted amount would silently change type downstream).
func jsonNumber(raw json.RawMessage, field string) (json.Number, error) {
	s := string(bytes.TrimSpace(raw))
	switch {
	case s == "" || s == "null":
		return "", nil // the contract's check reports it as required
	case s[0] == '-' || (s[0] >= '0' && s[0] <= '9'):
		return json.Number(s), nil
	default:
		return "", invalidField(field, "must be a JSON number, got "+jsonKind(s[0]))
	}
}

func invalidField(field, problem string) *requestError {
	return &requestError{status: http.StatusUnprocessableEntity, msg: field + ": " + problem,
		fields: []history.FieldProblem{{Field: field, Problem: problem}}}
}

// readBody checks the Content-Type and reads the body up to limit.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, &requestError{status: http.StatusUnsupportedMediaType,
			msg: fmt.Sprintf("Content-Type must be application/json, got %q", ct)}
	}
	tooLarge := &requestError{status: http.StatusRequestEntityTooLarge,
		msg: fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, tooLarge
	case err != nil:
		return nil, badRequest(fmt.Sprintf("reading the request body: %v", err))
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, badRequest("request body is empty: a JSON object is required")
	}
	if trimmed[0] != '{' && json.Valid(trimmed) {
		return nil, badRequest("request body must be a JSON object, got " + jsonKind(trimmed[0]))
	}
	// encoding/json would silently turn invalid UTF-8 into U+FFFD and store
	// it: refuse it, naming the field. Bad bytes outside strings are a
	// syntax error, reported by the decoder.
	if path, bad := contract.InvalidUTF8Path(data); bad && path != "" {
		return nil, invalidField(path, "is not valid UTF-8")
	}
	return data, nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and
// trailing data; prefix is the path of data within the body, for messages.
func decodeStrict(data []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return badRequest("request body must hold one JSON object: unexpected data after it")
		}
		return nil
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		line, col := position(data, syntaxErr.Offset)
		return badRequest(fmt.Sprintf("malformed JSON at line %d, column %d: %v", line, col, err))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends inside a value")
	case errors.As(err, &typeErr):
		field := join(prefix, typeErr.Field)
		if field == "" {
			return badRequest(fmt.Sprintf("request body must be a JSON object, got %s", typeErr.Value))
		}
		return invalidField(field, fmt.Sprintf("must be %s, got %s", typeName(typeErr.Type), typeErr.Value))
	case strings.HasPrefix(err.Error(), `json: unknown field "`):
		name := strings.TrimSuffix(strings.TrimPrefix(err.Error(), `json: unknown field "`), `"`)
		field := join(prefix, name)
		return badRequest("unknown field "+field, history.FieldProblem{Field: field, Problem: "is not a known field"})
	default:
		return badRequest(fmt.Sprintf("malformed JSON: %v", err))
	}
}

func join(prefix, field string) string {
	if prefix == "" || field == "" {
		return prefix + field
	}
	return prefix + "." + field
}

// position converts a byte offset into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	return line, int(offset) - bytes.LastIndexByte(before, '\n') - 1
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return "a " + t.Kind().String()
	}
}

func jsonKind(first byte) string {
	switch first {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
