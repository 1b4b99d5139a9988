module github.com/invoicesync/invoicesync/receiver

go 1.26.8

require (
	github.com/invoicesync/invoicesync/migrations v0.0.0
	github.com/invoicesync/invoicesync/pkg v0.0.0
)

replace (
	github.com/invoicesync/invoicesync/migrations => ../migrations
	github.com/invoicesync/invoicesync/pkg => ../pkg
)
