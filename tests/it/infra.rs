//! The CloudFormation templates: every resource the deployment needs is there, with the
//! settings that matter, and the task role grants nothing beyond the queue (plus
//! `rds-db:connect` when IAM auth is on). cfn-lint checks the rest in CI.

use serde_json::{Value, json};

/// Reads a template, turning short-form intrinsics (`!Ref x`) into their long form (`{"Ref": x}`).
fn template(name: &str) -> Value {
    let path = format!("{}/infra/{name}", env!("CARGO_MANIFEST_DIR"));
    let yaml: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    to_json(yaml)
}

fn to_json(v: serde_norway::Value) -> Value {
    match v {
        serde_norway::Value::Null => Value::Null,
        serde_norway::Value::Bool(b) => json!(b),
        serde_norway::Value::Number(n) => serde_json::to_value(n).unwrap(),
        serde_norway::Value::String(s) => json!(s),
        serde_norway::Value::Sequence(s) => Value::Array(s.into_iter().map(to_json).collect()),
        serde_norway::Value::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    (
                        k.as_str().map(str::to_string).unwrap_or_else(|| format!("{k:?}")),
                        to_json(v),
                    )
                })
                .collect(),
        ),
        serde_norway::Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let key = match name {
                "Ref" | "Condition" => name.to_string(),
                _ => format!("Fn::{name}"),
            };
            let mut inner = to_json(t.value);
            if name == "GetAtt"
                && let Value::String(s) = &inner
            {
                inner = json!(s.split('.').collect::<Vec<_>>());
            }
            json!({ key: inner })
        }
    }
}

fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

fn one<'a>(t: &'a Value, kind: &str) -> &'a Value {
    let found = of_type(t, kind);
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0].1
}

#[test]
fn every_resource_is_defined() {
    let t = template("allim.yaml");
    let ecr = template("ecr.yaml");
    one(&ecr, "AWS::ECR::Repository");
    one(&t, "AWS::ECS::Cluster");
    one(&t, "AWS::Logs::LogGroup")["Properties"]["RetentionInDays"]
        .as_object()
        .expect("retention is a parameter");

    let td = &one(&t, "AWS::ECS::TaskDefinition")["Properties"];
    assert_eq!(
        td["RuntimePlatform"]["CpuArchitecture"],
        json!({"Ref": "CpuArchitecture"})
    );
    assert_eq!(t["Parameters"]["CpuArchitecture"]["Default"], "ARM64");
    assert_eq!(t["Parameters"]["Cpu"]["Default"], 256);
    assert_eq!(t["Parameters"]["Memory"]["Default"], 512);
    let container = &td["ContainerDefinitions"][0];
    assert_eq!(
        container["HealthCheck"]["Command"],
        json!(["CMD", "/usr/local/bin/allim", "healthcheck"])
    );
    assert_eq!(container["PortMappings"][0]["ContainerPort"], 8080);
    let secrets = container["Secrets"].to_string();
    for name in [
        "ALLIM_SENS_SECRET_KEY",
        "ALLIM_FCM_CREDENTIALS_JSON",
        "DATABASE_URL",
        "ALLIM_API_TOKENS",
    ] {
        assert!(secrets.contains(name), "secret {name}");
    }

    let service = &one(&t, "AWS::ECS::Service")["Properties"];
    assert_eq!(
        service["DeploymentConfiguration"]["DeploymentCircuitBreaker"],
        json!({"Enable": true, "Rollback": true})
    );
    assert_eq!(service["LaunchType"], "FARGATE");

    let tg = &one(&t, "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"];
    assert_eq!(tg["HealthCheckPath"], "/healthz");
    assert_eq!(
        tg["TargetGroupAttributes"][0],
        json!({"Key": "deregistration_delay.timeout_seconds", "Value": {"Ref": "ShutdownGraceSeconds"}})
    );
    // allim closes a connection idle for its header-read deadline; the ALB must close first,
    // or it may send a request on a connection allim is closing (a 502).
    let alb = &one(&t, "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"];
    let idle = alb["LoadBalancerAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Key"] == "idle_timeout.timeout_seconds")
        .expect("the ALB's idle timeout is set")["Value"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(
        idle < allim::web::serve::HEADER_READ_TIMEOUT.as_secs(),
        "the ALB's idle timeout ({idle} s) is not below allim's ({:?})",
        allim::web::serve::HEADER_READ_TIMEOUT
    );
    let listeners = of_type(&t, "AWS::ElasticLoadBalancingV2::Listener");
    assert!(listeners.iter().any(|(_, l)| l["Properties"]["Protocol"] == "HTTPS"
        && l["Properties"]["Certificates"][0]["CertificateArn"] == json!({"Ref": "CertificateArn"})));
    assert!(of_type(&t, "AWS::EC2::SecurityGroup").len() >= 2);

    let queues = of_type(&t, "AWS::SQS::Queue");
    assert_eq!(queues.len(), 2);
    let (_, main) = queues.iter().find(|(n, _)| *n == "Queue").unwrap();
    assert_eq!(
        main["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})
    );
    assert_eq!(
        of_type(&t, "AWS::SNS::Topic").len(),
        2,
        "the alarm topic allim consumes, and the ops topic it does not"
    );
    let subs = of_type(&t, "AWS::SNS::Subscription");
    let https = subs
        .iter()
        .find(|(_, s)| s["Properties"]["Protocol"] == "https")
        .expect("HTTPS subscription");
    assert_eq!(https.1["Condition"], "UseAlb");
    assert!(https.1["Properties"]["Endpoint"].to_string().contains("/webhooks/sns"));
    let sqs = subs
        .iter()
        .find(|(_, s)| s["Properties"]["Protocol"] == "sqs")
        .expect("low-cost SQS subscription");
    assert_eq!(sqs.1["Condition"], "AlarmsThroughQueue");
    assert_eq!(t["Parameters"]["LowCostMode"]["Default"], "false");
    for (_, r) in t["Resources"].as_object().unwrap() {
        if r["Type"].as_str().unwrap().starts_with("AWS::ElasticLoadBalancingV2") {
            assert_eq!(r["Condition"], "UseAlb", "no load balancer in the low-cost mode");
        }
    }

    let policy = &one(&t, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"];
    let metrics =
        policy["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]["Metrics"].to_string();
    assert!(metrics.contains("ApproximateNumberOfMessagesVisible") && metrics.contains("RunningTaskCount"));
    one(&t, "AWS::ApplicationAutoScaling::ScalableTarget");

    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let names: Vec<&str> = alarms
        .iter()
        .map(|(_, a)| a["Properties"]["MetricName"].as_str().unwrap())
        .collect();
    for m in [
        "HTTPCode_ELB_5XX_Count",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
    ] {
        assert!(names.contains(&m), "alarm on {m}");
    }
    // allim's own alarms go to a topic allim does not consume, so they page someone even
    // when allim is down.
    for (_, a) in alarms {
        assert_eq!(a["Properties"]["AlarmActions"], json!([{"Ref": "OpsTopic"}]));
    }
    let subs = of_type(&t, "AWS::SNS::Subscription");
    assert!(
        subs.iter()
            .all(|(_, s)| s["Properties"]["TopicArn"] != json!({"Ref": "OpsTopic"})
                || s["Properties"]["Protocol"] == "email"),
        "nothing of allim's subscribes to the ops topic"
    );
    assert_eq!(of_type(&t, "AWS::IAM::Role").len(), 2, "task role and execution role");

    // Secure by default: with the load balancer, the token secret is required (a template
    // rule, checked by CloudFormation before anything is created); without one, allim is
    // told it may listen without tokens.
    // SIGKILL only after any allowed grace (ShutdownGraceSeconds ≤ 110).
    let container = &one(&t, "AWS::ECS::TaskDefinition")["Properties"]["ContainerDefinitions"][0];
    assert_eq!(container["StopTimeout"], 120);
    assert_eq!(t["Parameters"]["ShutdownGraceSeconds"]["MaxValue"], 110);
    let rule = &t["Rules"]["ApiTokensWithLoadBalancer"];
    assert_eq!(
        rule["RuleCondition"],
        json!({"Fn::Equals": [{"Ref": "LowCostMode"}, "false"]})
    );
    assert_eq!(
        rule["Assertions"][0]["Assert"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiTokensSecretArn"}, ""]}]})
    );
    let env = one(&t, "AWS::ECS::TaskDefinition")["Properties"]["ContainerDefinitions"][0]["Environment"].to_string();
    assert!(
        env.contains(r#"{"Fn::If":["OpenWithoutAlb",{"Name":"ALLIM_ALLOW_ANONYMOUS","Value":"true"}"#),
        "{env}"
    );
    assert_eq!(
        t["Conditions"]["OpenWithoutAlb"],
        json!({"Fn::And": [{"Condition": "LowCost"}, {"Fn::Not": [{"Condition": "HasApiTokens"}]}]})
    );
}

#[test]
fn task_role_grants_only_the_queue_rds_connect_and_the_email_identity() {
    let t = template("allim.yaml");
    let role = &t["Resources"]["TaskRole"]["Properties"];
    assert!(
        role.get("ManagedPolicyArns").is_none(),
        "no managed policies on the task role"
    );
    let policies = role["Policies"].as_array().unwrap();
    assert_eq!(policies.len(), 3);
    let queue = &policies[0]["Fn::If"];
    assert_eq!(queue[0], "HasQueue", "no queue permissions when there is no queue");
    assert_eq!(queue[2], json!({"Ref": "AWS::NoValue"}));
    let queue = &queue[1]["PolicyDocument"]["Statement"];
    assert_eq!(
        queue,
        &json!([{"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
                 "Resource": {"Fn::GetAtt": ["Queue", "Arn"]}}])
    );
    let conditional = &policies[1]["Fn::If"];
    assert_eq!(conditional[0], "IamAuth", "rds-db:connect only with IAM auth");
    let statements = &conditional[1]["PolicyDocument"]["Statement"];
    assert_eq!(statements.as_array().unwrap().len(), 1);
    assert_eq!(statements[0]["Action"], "rds-db:connect");
    assert!(
        statements[0]["Resource"]
            .to_string()
            .contains("dbuser:${DbProxyResourceId}/${DbUser}")
    );
    assert_eq!(conditional[2], json!({"Ref": "AWS::NoValue"}));
    let email = &policies[2]["Fn::If"];
    assert_eq!(email[0], "HasEmail", "ses:SendEmail only when an identity is given");
    assert_eq!(
        email[1]["PolicyDocument"]["Statement"],
        json!([{"Effect": "Allow", "Action": "ses:SendEmail", "Resource": {"Ref": "SesIdentityArn"}}])
    );
}

/// The SQS door in the template: VPC-only (a Cloud Map private DNS name, a security group for
/// producers, no load balancer listener), and a parameter to run with no SQS queue at all.
#[test]
fn the_door_is_vpc_only_and_the_queue_optional() {
    let t = template("allim.yaml");
    assert_eq!(t["Parameters"]["SqsQueue"]["Default"], "true");
    assert_eq!(
        t["Conditions"]["HasQueue"],
        json!({"Fn::Equals": [{"Ref": "SqsQueue"}, "true"]})
    );
    // Everything that exists for the queue goes with it.
    for name in [
        "Queue",
        "DeadLetterQueue",
        "ScalableTarget",
        "BacklogPerTaskScaling",
        "DeadLetterQueueNotEmptyAlarm",
        "OldestMessageAgeAlarm",
    ] {
        assert_eq!(t["Resources"][name]["Condition"], "HasQueue", "{name}");
    }
    for name in ["QueueUrl", "DeadLetterQueueUrl"] {
        assert_eq!(t["Outputs"][name]["Condition"], "HasQueue", "{name}");
    }
    let container = &t["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    let env = container["Environment"].to_string();
    assert!(
        env.contains(r#"{"Fn::If":["HasQueue",{"Name":"ALLIM_SQS_QUEUE_URL""#),
        "{env}"
    );
    assert!(
        env.contains(r#"{"Fn::If":["HasDoor",{"Name":"ALLIM_SQS_DOOR_LISTEN","Value":"0.0.0.0:9324"}"#),
        "{env}"
    );
    assert!(container["Secrets"].to_string().contains("ALLIM_SQS_DOOR_KEYS"));
    // No queue needs the door, checked before anything is created.
    let rule = &t["Rules"]["NoQueueNeedsTheDoor"];
    assert_eq!(
        rule["RuleCondition"],
        json!({"Fn::Equals": [{"Ref": "SqsQueue"}, "false"]})
    );

    // Reachable inside the VPC only: a private DNS namespace, and the port open to one group.
    let ns = one(&t, "AWS::ServiceDiscovery::PrivateDnsNamespace");
    assert_eq!(ns["Properties"]["Vpc"], json!({"Ref": "VpcId"}));
    let discovery = one(&t, "AWS::ServiceDiscovery::Service");
    assert_eq!(discovery["Properties"]["DnsConfig"]["DnsRecords"][0]["Type"], "A");
    let service = &one(&t, "AWS::ECS::Service")["Properties"];
    assert_eq!(
        service["ServiceRegistries"]["Fn::If"][1][0]["RegistryArn"],
        json!({"Fn::GetAtt": ["DoorDiscovery", "Arn"]})
    );
    let ingress = &t["Resources"]["ServiceIngressFromProducers"];
    assert_eq!(ingress["Condition"], "HasDoor");
    assert_eq!(ingress["Properties"]["FromPort"], 9324);
    assert_eq!(
        ingress["Properties"]["SourceSecurityGroupId"],
        json!({"Ref": "ProducerSecurityGroup"})
    );
    assert!(
        ingress["Properties"].get("CidrIp").is_none(),
        "never open to an address range"
    );
    for (_, r) in of_type(&t, "AWS::ElasticLoadBalancingV2::Listener") {
        assert_ne!(r["Properties"]["Port"], 9324, "the door is not on the load balancer");
    }
}
