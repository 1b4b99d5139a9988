package history

import (
	"strings"

	"github.com/invoicesync/invoicesync/pkg/contract"
)

// FieldProblem is one field at fault and what is wrong with it.
type FieldProblem struct {
	// Field is the path of the field in the event-shaped JSON, e.g.
	// "forms[2].totalAmount".
	Field string `json:"field"`
	// Problem says what is wrong, e.g. "is required".
	Problem string `json:"problem"`
}

// ValidationError reports input that does not satisfy the contract, naming
// every field at fault. It matches contract.ErrInvalid with errors.Is.
type ValidationError struct {
	// Fields lists the problems, in the order of the fields.
	Fields []FieldProblem
}

func (e *ValidationError) add(field, problem string) {
	e.Fields = append(e.Fields, FieldProblem{Field: field, Problem: problem})
}

// Error lists every problem as "field: problem", separated by "; ".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Problem
	}
	return "invalid send-invoice history: " + strings.Join(parts, "; ")
}

// Unwrap lets errors.Is(err, contract.ErrInvalid) match.
func (e *ValidationError) Unwrap() error { return contract.ErrInvalid }

// fromContract splits a contract validation error ("invalid event: f: p;
// f: p") into its problems. A problem may quote input, which may hold
// "; ", so separators inside double quotes (Go %q syntax) are skipped.
func fromContract(err error) []FieldProblem {
	msg := strings.TrimPrefix(err.Error(), contract.ErrInvalid.Error()+": ")
	var out []FieldProblem
	for _, part := range splitOutsideQuotes(msg, "; ") {
		out = append(out, splitProblem(part))
	}
	return out
}

// fromSQL builds the error of a database function's invalid_parameter_value,
// whose message is "field: problem".
func fromSQL(msg string) *ValidationError {
	return &ValidationError{Fields: []FieldProblem{splitProblem(msg)}}
}

func splitProblem(s string) FieldProblem {
	field, problem, ok := strings.Cut(s, ": ")
	if !ok {
		return FieldProblem{Field: "history", Problem: s}
	}
	return FieldProblem{Field: field, Problem: problem}
}

func splitOutsideQuotes(s, sep string) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case inQuote && s[i] == '\\':
			i++ // skip the escaped byte
		case s[i] == '"':
			inQuote = !inQuote
		case !inQuote && strings.HasPrefix(s[i:], sep):
			out = append(out, s[start:i])
			start = i + len(sep)
			i += len(sep) - 1
		}
	}
	return append(out, s[start:])
}
