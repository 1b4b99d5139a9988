# Multi-stage build of the two services. Build context: the repository root
# (the Go workspace). Targets: sender, receiver.
#   docker build --target sender -t invoicesync-sender .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.work go.work.sum* ./
COPY pkg/go.mod pkg/go.sum pkg/
COPY migrations/go.mod migrations/go.sum migrations/
COPY sender/go.mod sender/go.sum sender/
COPY receiver/go.mod receiver/go.sum receiver/
COPY e2e/go.mod e2e/go.sum* e2e/
RUN go mod download -x 2>/dev/null || true
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/sender ./sender/cmd/sender && \
    go build -trimpath -ldflags="-s -w" -o /out/receiver ./receiver/cmd/receiver

FROM gcr.io/distroless/static-debian12:nonroot AS sender
COPY --from=build /out/sender /usr/local/bin/sender
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/sender"]
CMD ["serve"]

FROM gcr.io/distroless/static-debian12:nonroot AS receiver
COPY --from=build /out/receiver /usr/local/bin/receiver
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/receiver"]
CMD ["serve"]
