-- tenant_ops 0002: projects, tasks and their reference tables.
--
-- task_statuses and task_priorities are filled by fixtures/01 and fixtures/02.
-- tasks.status and tasks.priority hold their codes.

CREATE TABLE task_statuses (
    status_code VARCHAR(32) NOT NULL PRIMARY KEY,
    label VARCHAR(64) NOT NULL,
    category VARCHAR(16) NOT NULL,
    is_closed INTEGER NOT NULL DEFAULT 0,
    sort_order INTEGER NOT NULL DEFAULT 0,
    color VARCHAR(16)
);

CREATE TABLE task_priorities (
    priority_code VARCHAR(32) NOT NULL PRIMARY KEY,
    label VARCHAR(64) NOT NULL,
    weight INTEGER NOT NULL DEFAULT 0,
    response_hours INTEGER,
    sort_order INTEGER NOT NULL DEFAULT 0,
    color VARCHAR(16)
);

-- status: planned, active, on_hold, completed, cancelled
-- customer_id is NULL for internal projects (for example onboarding).
CREATE TABLE projects (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    project_name VARCHAR(140) NOT NULL,
    customer_id VARCHAR(64),
    status VARCHAR(32) NOT NULL DEFAULT 'planned',
    owner_email VARCHAR(140),
    start_date VARCHAR(10),
    end_date VARCHAR(10),
    budget DECIMAL(18,2),
    currency VARCHAR(3),
    description TEXT,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);

CREATE INDEX idx_projects_status ON projects (status);
CREATE INDEX idx_projects_customer_id ON projects (customer_id, status);
CREATE INDEX idx_projects_end_date ON projects (end_date);

CREATE TABLE tasks (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    project_id VARCHAR(64) NOT NULL,
    parent_task_id VARCHAR(64),
    subject VARCHAR(255) NOT NULL,
    description TEXT,
    status VARCHAR(32) NOT NULL DEFAULT 'open',
    priority VARCHAR(32) NOT NULL DEFAULT 'medium',
    assignee VARCHAR(140),
    due_date VARCHAR(10),
    estimated_hours DECIMAL(8,2),
    sort_order INTEGER NOT NULL DEFAULT 0,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);

CREATE INDEX idx_tasks_project_status ON tasks (project_id, status);
CREATE INDEX idx_tasks_status ON tasks (status);
CREATE INDEX idx_tasks_assignee_status ON tasks (assignee, status);
CREATE INDEX idx_tasks_due_date ON tasks (due_date);
CREATE INDEX idx_tasks_parent ON tasks (parent_task_id);
