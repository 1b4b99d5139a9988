package migrations_test

import "io/fs"

func fsGlob(fsys fs.FS) (int, error) {
	m, err := fs.Glob(fsys, "*.sql")
	return len(m), err
}
