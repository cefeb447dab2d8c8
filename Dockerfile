# syntax=docker/dockerfile:1
# Images of the five services from one workspace build: `docker build --target deployer -t …/deployer .`
# The build stage compiles every service once (release, locked); each service stage copies its binary
# into a distroless image running as 65532, the user the charts' restricted pods expect.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p inventory -p edge-registry -p backup -p secrets-rotator -p deployer \
 && mkdir -p /out \
 && cp target/release/inventory target/release/edge-registry target/release/backup \
       target/release/secrets-rotator target/release/deployer /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS service-base
USER 65532:65532
EXPOSE 8080

FROM service-base AS inventory
COPY --from=build /out/inventory /usr/local/bin/inventory
ENTRYPOINT ["/usr/local/bin/inventory"]

FROM service-base AS edge-registry
COPY --from=build /out/edge-registry /usr/local/bin/edge-registry
ENTRYPOINT ["/usr/local/bin/edge-registry"]

FROM service-base AS secrets-rotator
COPY --from=build /out/secrets-rotator /usr/local/bin/secrets-rotator
ENTRYPOINT ["/usr/local/bin/secrets-rotator"]

FROM service-base AS deployer
COPY --from=build /out/deployer /usr/local/bin/deployer
ENTRYPOINT ["/usr/local/bin/deployer"]

# backup runs pg_dump/pg_restore: it needs the PostgreSQL client, so a slim Debian rather than distroless.
FROM docker.io/library/debian:bookworm-slim AS backup
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client-15 ca-certificates \
 && rm -rf /var/lib/apt/lists/* && useradd --uid 65532 --user-group --no-create-home nonroot
COPY --from=build /out/backup /usr/local/bin/backup
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/backup"]
