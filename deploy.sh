#!/usr/bin/env bash
# deploy.sh — build allim's image, push it to ECR, and roll it out on ECS Fargate with
# CloudFormation. A failed rollout is rolled back by the ECS deployment circuit breaker.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./deploy.sh [options]

Builds the image (tagged with the git commit), pushes it to ECR (creating the repository if it
is missing), deploys the CloudFormation stack in infra/allim.yaml with that image, waits for
the ECS service to be stable, and prints the image that runs.

Options (each also an environment variable):
  --region REGION      AWS region                    (AWS_REGION / AWS_DEFAULT_REGION)
  --stack NAME         CloudFormation stack name     (ALLIM_STACK, default: allim)
  --params FILE        stack parameters, KEY=VALUE lines; # comments allowed
                                                     (ALLIM_PARAMS, default: infra/params.env)
  --repository NAME    ECR repository                (ALLIM_REPOSITORY, default: allim)
  --platform PLATFORM  linux/arm64 or linux/amd64    (ALLIM_PLATFORM, default: linux/arm64)
  --dry-run            print every command it would run, and run none
  --force              deploy from a working tree with uncommitted changes
  -h, --help           this help

Needs: aws (CLI v2), docker with buildx, git.
USAGE
}

REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
STACK="${ALLIM_STACK:-allim}"
PARAMS="${ALLIM_PARAMS:-infra/params.env}"
REPOSITORY="${ALLIM_REPOSITORY:-allim}"
PLATFORM="${ALLIM_PLATFORM:-linux/arm64}"
DRY_RUN=0
FORCE=0

while [ $# -gt 0 ]; do
  case "$1" in
    --region) REGION="${2:?--region needs a value}"; shift 2 ;;
    --stack) STACK="${2:?--stack needs a value}"; shift 2 ;;
    --params) PARAMS="${2:?--params needs a value}"; shift 2 ;;
    --repository) REPOSITORY="${2:?--repository needs a value}"; shift 2 ;;
    --platform) PLATFORM="${2:?--platform needs a value}"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --force) FORCE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "deploy.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")"

# Command lines go to fd 3 (the original stdout), so that they show even from inside $(…).
exec 3>&1
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }

# Prints a command as it would be typed, then runs it (not in --dry-run).
run() {
  {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  } >&3
  if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

# Runs a read-only command whose output is needed; in --dry-run prints it and answers $1.
ask() {
  local placeholder="$1"
  shift
  if [ "$DRY_RUN" -eq 1 ]; then
    {
      printf '+'
      printf ' %q' "$@"
      printf '\n'
    } >&3
    printf '%s' "$placeholder"
  else
    "$@"
  fi
}

case "$PLATFORM" in
  linux/arm64) ARCH=ARM64 ;;
  linux/amd64) ARCH=X86_64 ;;
  *) die "--platform must be linux/arm64 or linux/amd64 (got $PLATFORM)" ;;
esac
if [ -z "$REGION" ]; then
  [ "$DRY_RUN" -eq 1 ] || die "no region: pass --region or set AWS_REGION"
  REGION=ap-northeast-2
  say "warning: no region given; the dry run shows $REGION"
fi
if [ ! -f "$PARAMS" ]; then
  [ "$DRY_RUN" -eq 1 ] || die "no parameters file $PARAMS (copy infra/params.example.env and fill it in)"
  say "warning: $PARAMS is missing; the dry run shows infra/params.example.env"
  PARAMS=infra/params.example.env
fi
[ -f infra/allim.yaml ] || die "infra/allim.yaml is missing: run deploy.sh from an allim checkout"

say "checking tools"
for tool in aws docker git; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "$DRY_RUN" -eq 1 ]; then say "warning: $tool is not installed (dry run goes on)"; else die "$tool is not installed"; fi
  fi
done

say "checking the working tree"
COMMIT="$(git rev-parse --short=12 HEAD)"
TAG="$COMMIT"
if [ -n "$(git status --porcelain)" ]; then
  if [ "$FORCE" -eq 1 ]; then
    TAG="$COMMIT-dirty-$(date -u +%Y%m%d%H%M%S)"
    say "warning: uncommitted changes; deploying them as $TAG (--force)"
  else
    die "the working tree has uncommitted changes; commit them, or pass --force"
  fi
fi

say "checking the AWS identity"
ACCOUNT="$(ask "${AWS_ACCOUNT_ID:-123456789012}" aws sts get-caller-identity --query Account --output text)"
REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
IMAGE="$REGISTRY/$REPOSITORY:$TAG"
say "account $ACCOUNT, region $REGION, image $IMAGE"

say "ECR repository $REPOSITORY"
if [ "$DRY_RUN" -eq 1 ]; then
  run aws ecr describe-repositories --region "$REGION" --repository-names "$REPOSITORY"
  echo "# if it is missing:"
  run aws cloudformation deploy --region "$REGION" --stack-name "$STACK-ecr" \
    --template-file infra/ecr.yaml --parameter-overrides "RepositoryName=$REPOSITORY" --no-fail-on-empty-changeset
elif ! aws ecr describe-repositories --region "$REGION" --repository-names "$REPOSITORY" >/dev/null 2>&1; then
  run aws cloudformation deploy --region "$REGION" --stack-name "$STACK-ecr" \
    --template-file infra/ecr.yaml --parameter-overrides "RepositoryName=$REPOSITORY" --no-fail-on-empty-changeset
fi

say "logging in to $REGISTRY"
printf '+ aws ecr get-login-password --region %q | docker login --username AWS --password-stdin %q\n' "$REGION" "$REGISTRY"
if [ "$DRY_RUN" -eq 0 ]; then
  aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY" >/dev/null
fi

say "building and pushing $IMAGE ($PLATFORM)"
if [ "$DRY_RUN" -eq 0 ] && aws ecr describe-images --region "$REGION" --repository-name "$REPOSITORY" \
  --image-ids "imageTag=$TAG" >/dev/null 2>&1; then
  say "$IMAGE is already in ECR; not building it again"
else
  run docker buildx build --platform "$PLATFORM" --tag "$IMAGE" --push .
fi

say "deploying stack $STACK"
OVERRIDES=("ImageUri=$IMAGE" "CpuArchitecture=$ARCH")
while IFS= read -r line || [ -n "$line" ]; do
  line="${line%%#*}"
  line="$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')"
  [ -z "$line" ] && continue
  case "$line" in
    *=*) ;;
    *) die "$PARAMS: '$line' is not KEY=VALUE" ;;
  esac
  case "$line" in
    ImageUri=* | CpuArchitecture=*) die "$PARAMS: ${line%%=*} is set by deploy.sh" ;;
  esac
  OVERRIDES+=("$line")
done <"$PARAMS"

report_failure() {
  say "the rollout failed"
  if [ "$DRY_RUN" -eq 0 ]; then
    local state
    # The backticks are JMESPath literals, not shell.
    # shellcheck disable=SC2016
    state="$(aws ecs describe-services --region "$REGION" --cluster "$STACK" --services allim \
      --query 'services[0].deployments[?rolloutState==`FAILED`].rolloutStateReason | [0]' --output text 2>/dev/null || true)"
    if [ -n "$state" ] && [ "$state" != "None" ]; then
      say "ECS: $state"
      say "the ECS deployment circuit breaker rolled the service back to the previous task definition"
    fi
    say "CloudFormation events: aws cloudformation describe-stack-events --region $REGION --stack-name $STACK"
  fi
  exit 1
}

run aws cloudformation deploy --region "$REGION" --stack-name "$STACK" \
  --template-file infra/allim.yaml --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
  --parameter-overrides "${OVERRIDES[@]}" || report_failure

say "waiting for the service to be stable"
run aws ecs wait services-stable --region "$REGION" --cluster "$STACK" --services allim || report_failure

say "running image"
TASK_DEFINITION="$(ask "arn:aws:ecs:$REGION:$ACCOUNT:task-definition/$STACK:1" aws ecs describe-services --region "$REGION" \
  --cluster "$STACK" --services allim --query 'services[0].taskDefinition' --output text)"
RUNNING="$(ask "$IMAGE" aws ecs describe-task-definition --region "$REGION" --task-definition "$TASK_DEFINITION" \
  --query 'taskDefinition.containerDefinitions[0].image' --output text)"
if [ "$DRY_RUN" -eq 0 ] && [ "$RUNNING" != "$IMAGE" ]; then
  say "the service runs $RUNNING, not $IMAGE: the rollout was rolled back"
  exit 1
fi
say "deployed: $RUNNING"
