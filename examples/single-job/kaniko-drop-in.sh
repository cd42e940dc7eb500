#!/busybox/sh
# kaniko's own command line, unchanged, inside gantry's image (`/kaniko/executor` is gantry):
/kaniko/executor \
  --context "$CI_PROJECT_DIR" \
  --dockerfile "$CI_PROJECT_DIR/Dockerfile" \
  --destination "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA" \
  --build-arg VERSION="$CI_COMMIT_SHORT_SHA"
