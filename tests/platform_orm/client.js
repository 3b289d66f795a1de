// node client.js sync|use URL: the platform's ORM against a database wcperf works on.
// Prints one JSON line: the SQL it issued (DDL only) and what it read and wrote.
"use strict";
const { define, Sequelize } = require("./models");

async function main() {
  const [command, url] = process.argv.slice(2);
  const statements = [];
  const sequelize = new Sequelize(url, {
    dialect: "postgres",
    logging: (sql) => statements.push(sql.replace(/^Executing \([^)]*\): /, "")),
  });
  const m = define(sequelize);
  const out = {};
  try {
    if (command === "sync") {
      await sequelize.sync();
      out.ddl = statements.filter((s) => /^(CREATE|ALTER|DROP|COMMENT)\b/i.test(s));
    } else if (command === "use") {
      const students = await m.Student.findAll({
        where: { isActive: true },
        include: [{ model: m.User, as: "nurse" }],
        order: [["lastName", "ASC"], ["firstName", "ASC"]],
        limit: 25,
      });
      out.students = students.length;
      out.withNurse = students.filter((s) => s.nurse).length;
      out.paranoidCount = await m.Student.count();
      out.allCount = await m.Student.count({ paranoid: false });
      const one = students[0];
      const record = await m.HealthRecord.create({
        studentId: one.id, recordType: "CHECKUP", title: "ORM visit", description: "ORM visit",
        recordDate: new Date(),
      });
      const appointment = await m.Appointment.create({
        studentId: one.id, nurseId: one.nurseId, type: "FOLLOW_UP", reason: "ORM follow-up",
        scheduledAt: new Date(),
      });
      await m.Appointment.update({ status: "COMPLETED" }, { where: { id: appointment.id } });
      const timeline = await m.HealthRecord.findAll({
        where: { studentId: one.id },
        include: [{ model: m.Student, as: "student" }],
        order: [["recordDate", "DESC"]],
      });
      out.timelineHasNew = timeline.some((r) => r.id === record.id);
      await record.destroy(); // paranoid: a soft delete
      out.afterSoftDelete = await m.HealthRecord.count({ where: { studentId: one.id } });
      out.timelineBefore = timeline.length;
    }
  } finally {
    await sequelize.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => {
  process.stderr.write(`${err.name}: ${err.message}\n`);
  process.exit(1);
});
