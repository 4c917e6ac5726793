# Ember's images, one multi-stage file:
#   --target runtime       the function runtime (ember_runtime + its HTTP stack only)
#   --target controlplane  the operator, gateway, autoscaler and dispatcher
#   --target redis         Debian's redis-server, for the chart's bundled broker
#
# BASE is any Debian-based image with python3.11 and pip: the usual public
# Python image by default, or the one `make images` builds locally with
# debootstrap where no registry is reachable. Python packages come from
# wheels built on the host into build/wheels (`make wheels`), so those
# builds need no network; only the `redis` target runs apt.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS base
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/ember/site \
    HOME=/tmp \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A named user for UID 10001: libraries that ask for the user name (getpass,
# kopf's peering identity) need a passwd entry.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin ember

FROM base AS wheels
COPY build/wheels /wheels

# --- function runtime ---------------------------------------------------------
FROM wheels AS runtime-build
RUN python3 -m pip install --no-index --no-cache-dir --find-links /wheels \
      --target /opt/ember/site ember-runtime \
 && python3 -m compileall -q /opt/ember/site

FROM base AS runtime
COPY --from=runtime-build /opt/ember/site /opt/ember/site
# Non-root, and nothing below needs a writable root filesystem: /tmp is an
# emptyDir in function pods.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENV EMBER_PORT=8080
ENTRYPOINT ["python3", "-m", "ember_runtime"]

# --- control plane ----------------------------------------------------------
FROM wheels AS controlplane-build
RUN python3 -m pip install --no-index --no-cache-dir --find-links /wheels \
      --target /opt/ember/site ember-operator \
 && python3 -m compileall -q /opt/ember/site

FROM base AS controlplane
COPY --from=controlplane-build /opt/ember/site /opt/ember/site
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["python3", "-m", "ember_operator"]

# --- redis (the chart's bundled broker) -----------------------------------
# Debian's redis-server on the same base, installed with apt from the
# base's own Debian sources (the build needs the network for this target
# alone; hack/images.sh gives it the host's). Config comes from
# ember-redis at start (the password into a private file, never argv).
# It comes last: the classic builder builds every stage before its target,
# and the other targets must not need the network.
FROM base AS redis
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* \
 && redis-server --version \
 && install -d -o 10001 -g 10001 -m 0700 /data
COPY hack/redis/ember-redis /usr/local/bin/ember-redis
USER 10001:10001
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/ember-redis"]
